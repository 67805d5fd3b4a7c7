//! Report tokens: one random secret per attempt, handed only to its unit of work, and stored
//! by the control plane only as its SHA-256 (the same hash serves API tokens).

use rand::RngCore;
use sha2::{Digest, Sha256};

/// SHA-256 hex of a token: what the database keeps instead of the secret.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh report token (`spr_` and 64 hex digits of OS randomness).
pub fn new_report_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("spr_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_is_stable_sha256() {
        let a = new_report_token();
        let b = new_report_token();
        assert_ne!(a, b);
        assert!(a.starts_with("spr_") && a.len() == 68);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
