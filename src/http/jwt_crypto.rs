//! The cryptography `jsonwebtoken` verifies SMART client assertions with, from `ring`: the library that is
//! already onedoor's TLS crypto (rustls), instead of a second one. `jsonwebtoken` 10+ takes its crypto from a
//! [`CryptoProvider`]; its own two are aws-lc-rs (a C and CMake build) and RustCrypto (36 crates,
//! 43 s of a clean release build's CPU, and the `rsa` crate with RUSTSEC-2023-0071). This one does what
//! onedoor asks of a JWT library and nothing more: verify RS384 (RSASSA-PKCS1-v1_5, SHA-384, 2048 to 8192
//! bit keys) and ES384 (P-384, SHA-384, fixed-length signatures), the two algorithms SMART Backend Services
//! requires servers to support. onedoor never signs a JWT (its access tokens are opaque), so signing and
//! deriving public keys from private ones are refused with an error, and every other algorithm too.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{
    ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA384, RsaPublicKeyComponents, UnparsedPublicKey,
};

/// The provider: RS384 and ES384 verification from `ring`.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: refuse_to_sign,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidKeyFormat.into()),
        ed_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidKeyFormat.into()),
        compute_digest: digest,
    },
};

/// Make [`PROVIDER`] the process's `jsonwebtoken` crypto, once, before any JWT is read (`serve` calls it at
/// start, the token endpoint again before each assertion); whether it is the one in effect. It is not only
/// when another provider was compiled in and chosen first (a test process's RustCrypto signer).
pub fn install() -> bool {
    let _ = PROVIDER.install_default();
    CryptoProvider::try_get_default().is_some_and(|current| std::ptr::eq(current, &PROVIDER))
}

fn refuse_to_sign(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let family = match algorithm {
        Algorithm::RS384 => AlgorithmFamily::Rsa,
        Algorithm::ES384 => AlgorithmFamily::Ec,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

/// One RS384 or ES384 key, checked by [`verifier`] to be of its algorithm's family.
struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), SignatureError> {
        let checked = match (self.algorithm, self.key.kind()) {
            (Algorithm::RS384, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                let (n, e) = (minimal(n), minimal(e));
                RsaPublicKeyComponents { n, e }.verify(
                    &RSA_PKCS1_2048_8192_SHA384,
                    message,
                    signature,
                )
            }
            // An RSAPublicKey (PKCS#1) in DER, as `DecodingKey::from_rsa_pem` and `from_rsa_der` hold it.
            (Algorithm::RS384, DecodingKeyKind::SecretOrDer(der)) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA384, der).verify(message, signature)
            }
            // The uncompressed point (0x04, x, y), as `DecodingKey::from_jwk` and `from_ec_pem` hold it.
            (Algorithm::ES384, DecodingKeyKind::SecretOrDer(point)) => {
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point).verify(message, signature)
            }
            _ => return Err(SignatureError::new()),
        };
        checked.map_err(|_| SignatureError::new())
    }
}

/// An unsigned integer's big-endian bytes without leading zero bytes. A JWK's `n` and `e` must be written in
/// as few bytes as they need (RFC 7518, Base64urlUInt), but some key tools write a leading zero; `ring` takes
/// only the minimal form, so a partner's otherwise valid key is read as its producer meant it.
fn minimal(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Why a partner's registered key can never verify an assertion here, if it cannot (`config check` says so
/// rather than every token request failing with `invalid_client`): RS384 needs an RSA key of 2048 to 8192
/// bits, ES384 a P-384 key.
pub fn unusable(jwk: &Jwk) -> Option<String> {
    let key = match DecodingKey::from_jwk(jwk) {
        Ok(key) => key,
        Err(err) => return Some(format!("cannot be read ({err})")),
    };
    match (&jwk.algorithm, key.kind()) {
        (AlgorithmParameters::RSA(_), DecodingKeyKind::RsaModulusExponent { n, .. }) => {
            let n = minimal(n);
            let bits =
                (n.len() * 8).saturating_sub(n.first().map_or(8, |b| b.leading_zeros() as usize));
            (!(2048..=8192).contains(&bits))
                .then(|| format!("an RSA key of {bits} bits (RS384 needs 2048 to 8192)"))
        }
        (AlgorithmParameters::EllipticCurve(ec), _) if ec.curve != EllipticCurve::P384 => {
            let curve = match ec.curve {
                EllipticCurve::P256 => "P-256",
                EllipticCurve::P521 => "P-521",
                EllipticCurve::Ed25519 => "Ed25519",
                _ => "another curve's",
            };
            Some(format!("a {curve} key (ES384 needs P-384)"))
        }
        (AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::RSA(_), _) => None,
        _ => Some(
            "neither an RSA nor an EC key (assertions are signed with RS384 or ES384)".to_owned(),
        ),
    }
}

/// A JWK thumbprint's hash (RFC 7638).
fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    //! RustCrypto signs (jsonwebtoken's `rust_crypto`, a dev-dependency feature), `ring` verifies: two
    //! implementations agreeing on real keys, and refusing what they must.
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64_URL;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    const RSA_PRIVATE: &str = include_str!("testdata/rs384-private.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rs384-public.pem");
    const EC_PRIVATE: &str = include_str!("testdata/es384-private.pem");
    const EC_PUBLIC: &str = include_str!("testdata/es384-public.pem");

    /// A token signed with RustCrypto's provider itself, whatever this test process's default provider is.
    fn sign(algorithm: Algorithm, key: &EncodingKey) -> String {
        let claims = json!({"iss": "partner", "sub": "partner", "aud": "x", "exp": 4_102_444_800_u64, "jti": "1"});
        let header = json!({"alg": format!("{algorithm:?}"), "typ": "JWT"});
        let message = format!("{}.{}", base64_url_text(&header), base64_url_text(&claims));
        let rust_crypto = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        let signer = (rust_crypto.signer_factory)(&algorithm, key).unwrap();
        let signature = signer.try_sign(message.as_bytes()).unwrap();
        format!("{message}.{}", BASE64_URL.encode(signature))
    }

    fn base64_url_text(value: &serde_json::Value) -> String {
        BASE64_URL.encode(value.to_string())
    }

    /// Verify `token` with [`PROVIDER`] directly (whatever this test process's default provider is).
    fn verifies(token: &str, algorithm: Algorithm, key: &DecodingKey) -> bool {
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = BASE64_URL.decode(signature).unwrap();
        (PROVIDER.verifier_factory)(&algorithm, key)
            .is_ok_and(|v| v.verify(message.as_bytes(), &signature).is_ok())
    }

    fn tampered(token: &str) -> String {
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut signature = BASE64_URL.decode(signature).unwrap();
        signature[10] ^= 1;
        format!("{message}.{}", BASE64_URL.encode(signature))
    }

    /// A public key from its PEM file (RS384: RSA; ES384: P-384).
    fn public_key(public_pem: &[u8], algorithm: Algorithm) -> DecodingKey {
        let key = match algorithm {
            Algorithm::RS384 => DecodingKey::from_rsa_pem(public_pem),
            _ => DecodingKey::from_ec_pem(public_pem),
        };
        key.unwrap()
    }

    /// A private key from its PEM file, for RustCrypto to sign with.
    fn private_key(private_pem: &str, algorithm: Algorithm) -> EncodingKey {
        let key = match algorithm {
            Algorithm::RS384 => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(private_pem.as_bytes()),
        };
        key.unwrap()
    }

    #[test]
    fn verifies_rs384_and_es384_from_pem_and_from_jwk_components() {
        let rsa = private_key(RSA_PRIVATE, Algorithm::RS384);
        let ec = private_key(EC_PRIVATE, Algorithm::ES384);
        let (rs_token, es_token) = (sign(Algorithm::RS384, &rsa), sign(Algorithm::ES384, &ec));
        let rsa_key = public_key(RSA_PUBLIC.as_bytes(), Algorithm::RS384);
        let ec_key = public_key(EC_PUBLIC.as_bytes(), Algorithm::ES384);
        assert!(verifies(&rs_token, Algorithm::RS384, &rsa_key));
        assert!(verifies(&es_token, Algorithm::ES384, &ec_key));
        for (token, algorithm, key) in [
            (&rs_token, Algorithm::RS384, &rsa_key),
            (&es_token, Algorithm::ES384, &ec_key),
        ] {
            assert!(
                !verifies(&tampered(token), algorithm, key),
                "{algorithm:?}: a changed signature"
            );
            let (message, signature) = token.rsplit_once('.').unwrap();
            let other = format!("{}x.{signature}", message);
            assert!(
                !verifies(&other, algorithm, key),
                "{algorithm:?}: a changed message"
            );
        }
        // The same keys as a partner's JWKS holds them (n and e; x and y), read by jsonwebtoken.
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(include_str!("testdata/jwks.json")).unwrap();
        let by_kid = |kid: &str| DecodingKey::from_jwk(jwks.find(kid).unwrap()).unwrap();
        assert!(verifies(&rs_token, Algorithm::RS384, &by_kid("rsa-test")));
        assert!(verifies(&es_token, Algorithm::ES384, &by_kid("ec-test")));
        assert!(!verifies(&es_token, Algorithm::ES384, &by_kid("rsa-test")));
        // A modulus written with a leading zero byte (not minimal, as some key tools write it) is the same key.
        let Some(jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa)) =
            jwks.find("rsa-test").map(|k| &k.algorithm)
        else {
            panic!("the test JWKS holds an RSA key rsa-test");
        };
        let mut padded = vec![0u8];
        padded.extend(BASE64_URL.decode(&rsa.n).unwrap());
        let key = DecodingKey::from_rsa_components(&BASE64_URL.encode(&padded), &rsa.e).unwrap();
        assert!(verifies(&rs_token, Algorithm::RS384, &key));
    }

    #[test]
    fn a_key_that_can_never_verify_is_named() {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(json!({"keys": [
            {"kty": "RSA", "kid": "short", "n": "wUhw5JiVydzvXJT6I8rpUXb1zKRbZELm44UBOvvJdB1fdMRTLg4s9d8H0eKmgrLRvQOA9qE5KI6fF_8aPKHKaw", "e": "AQAB"},
            {"kty": "EC", "kid": "p256", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}
        ]})).unwrap();
        let said = |kid: &str| unusable(jwks.find(kid).unwrap()).unwrap_or_default();
        assert_eq!(
            said("short"),
            "an RSA key of 512 bits (RS384 needs 2048 to 8192)"
        );
        assert_eq!(said("p256"), "a P-256 key (ES384 needs P-384)");
        assert!(
            said("secret").contains("neither an RSA nor an EC key"),
            "{}",
            said("secret")
        );
        let good: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(include_str!("testdata/jwks.json")).unwrap();
        assert!(good.keys.iter().all(|k| unusable(k).is_none()));
    }

    #[test]
    fn refuses_other_algorithms_the_wrong_key_family_and_signing() {
        let rsa_key = public_key(RSA_PUBLIC.as_bytes(), Algorithm::RS384);
        let ec_key = public_key(EC_PUBLIC.as_bytes(), Algorithm::ES384);
        for algorithm in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::HS256,
            Algorithm::PS384,
            Algorithm::EdDSA,
        ] {
            assert!(
                (PROVIDER.verifier_factory)(&algorithm, &rsa_key).is_err(),
                "{algorithm:?}"
            );
            assert!(
                (PROVIDER.verifier_factory)(&algorithm, &ec_key).is_err(),
                "{algorithm:?}"
            );
        }
        assert!((PROVIDER.verifier_factory)(&Algorithm::RS384, &ec_key).is_err());
        assert!((PROVIDER.verifier_factory)(&Algorithm::ES384, &rsa_key).is_err());
        let rsa = private_key(RSA_PRIVATE, Algorithm::RS384);
        assert!((PROVIDER.signer_factory)(&Algorithm::RS384, &rsa).is_err());
        // A token signed with one key does not verify with another real key of the same algorithm.
        for (algorithm, private, other_public) in [
            (
                Algorithm::ES384,
                EC_PRIVATE,
                &include_bytes!("testdata/es384-other-public.pem")[..],
            ),
            (
                Algorithm::RS384,
                RSA_PRIVATE,
                &include_bytes!("testdata/rs384-other-public.pem")[..],
            ),
        ] {
            let token = sign(algorithm, &private_key(private, algorithm));
            let other = public_key(other_public, algorithm);
            assert!(!verifies(&token, algorithm, &other), "{algorithm:?}");
        }
    }
}
