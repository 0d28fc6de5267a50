//! Errors of the device gateway that reach its caller (the binary); errors of
//! single connections are logged and end only that connection.

use std::io;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen for MQTT on {addr}: {hint}")]
    Bind {
        addr: SocketAddr,
        hint: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid MQTT broker URL {url:?}: {reason}")]
    BrokerUrl { url: String, reason: String },
    #[error("MQTT gateway I/O error: {0}")]
    Io(#[from] io::Error),
}

impl GatewayError {
    pub(crate) fn bind(addr: SocketAddr, source: io::Error) -> Self {
        let hint = match source.kind() {
            io::ErrorKind::AddrInUse => {
                "the address is already in use (is another MQTT broker such as Mosquitto running there?); \
                 stop it or choose another MQTT listen address"
                    .to_owned()
            }
            io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".to_owned(),
            _ => source.to_string(),
        };
        Self::Bind { addr, hint, source }
    }
}
