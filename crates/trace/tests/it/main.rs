mod checkpoint;
mod epcis_hash;
mod label_code;
mod merkle;
