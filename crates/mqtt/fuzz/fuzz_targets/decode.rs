//! Fuzzes the gateway's MQTT packet decoder (报文解码) with the bytes an
//! untrusted device could send: before CONNECT and in either protocol
//! version, decoding must never panic, must consume only whole frames within
//! the size limit, and must stop (error or "need more bytes") rather than loop.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shuxiang_mqtt::codec::{DecodeError, Version, decode};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    for version in [None, Some(Version::V311), Some(Version::V5)] {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            match decode(&mut buf, version, MAX) {
                Ok(Some(_)) => assert!(buf.len() < before, "a packet consumes bytes"),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete frame is left in place");
                    break;
                }
                Err(DecodeError::TooLarge { size, max }) => {
                    assert!(size > max);
                    break;
                }
                Err(_) => break,
            }
            if version.is_none() {
                break;
            }
        }
    }
});
