//! Bearer JWT verification against real keys (test-only keys in tests/keys).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kf_tenancy::{JwtVerifier, VerificationKey};
use serde_json::{Value, json};

const ISSUER: &str = "https://dex.example.com";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": "kf", "exp": now() + 300, "email": "alice@example.com", "groups": ["ml", "ops"]})
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("keys/rsa-private.pem")).unwrap()
}

fn verifier() -> JwtVerifier {
    JwtVerifier::new(
        ISSUER,
        "kf",
        vec![
            VerificationKey::rs256_pem(include_bytes!("keys/rsa-public.pem")).unwrap(),
            VerificationKey::es256_pem(include_bytes!("keys/ec-public.pem")).unwrap(),
            VerificationKey::hs256(b"a shared secret of reasonable length"),
        ],
    )
}

#[test]
fn valid_tokens_of_every_algorithm_verify() {
    let v = verifier();
    let rs = sign(Algorithm::RS256, &rsa(), &claims());
    let id = v.verify(&rs).unwrap();
    assert_eq!(id.user, "alice@example.com");
    assert_eq!(id.groups, ["ml", "ops"]);
    let es =
        sign(Algorithm::ES256, &EncodingKey::from_ec_pem(include_bytes!("keys/ec-private.pem")).unwrap(), &claims());
    assert_eq!(v.verify(&es).unwrap().user, "alice@example.com");
    let hs = sign(Algorithm::HS256, &EncodingKey::from_secret(b"a shared secret of reasonable length"), &claims());
    assert_eq!(v.verify(&hs).unwrap().user, "alice@example.com");
}

#[test]
fn forged_expired_and_misdirected_tokens_are_rejected() {
    let v = verifier();
    let mut c = claims();
    c["exp"] = json!(now() - 3600);
    assert!(v.verify(&sign(Algorithm::RS256, &rsa(), &c)).is_err(), "expired");
    let mut c = claims();
    c["aud"] = json!("another-app");
    assert!(v.verify(&sign(Algorithm::RS256, &rsa(), &c)).is_err(), "wrong audience");
    let mut c = claims();
    c["iss"] = json!("https://evil.example.com");
    assert!(v.verify(&sign(Algorithm::RS256, &rsa(), &c)).is_err(), "wrong issuer");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert!(v.verify(&sign(Algorithm::RS256, &rsa(), &c)).is_err(), "no expiry");
    let other = EncodingKey::from_rsa_pem(include_bytes!("keys/rsa-other-private.pem")).unwrap();
    assert!(v.verify(&sign(Algorithm::RS256, &other, &claims())).is_err(), "signed by a key we do not trust");
    let guessed = EncodingKey::from_secret(b"guessed");
    assert!(v.verify(&sign(Algorithm::HS256, &guessed, &claims())).is_err(), "wrong HMAC secret");
}

#[test]
fn algorithm_confusion_and_unsigned_tokens_are_rejected() {
    // HS256 "signed" with the RSA public key as the secret: only an RS256 key
    // may verify RS256 material, so the verifier must not accept it.
    let only_rsa = JwtVerifier::new(
        ISSUER,
        "kf",
        vec![VerificationKey::rs256_pem(include_bytes!("keys/rsa-public.pem")).unwrap()],
    );
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(include_bytes!("keys/rsa-public.pem")), &claims());
    assert!(only_rsa.verify(&confused).is_err());

    // alg "none": header and payload with an empty signature
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(claims().to_string()));
    assert!(verifier().verify(&unsigned).is_err());

    // a valid signature over edited claims
    let token = sign(Algorithm::RS256, &rsa(), &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut edited = claims();
    edited["email"] = json!("admin@example.com");
    let tampered = format!("{}.{}.{}", parts[0], b64.encode(edited.to_string()), parts[2]);
    assert!(verifier().verify(&tampered).is_err());
    for garbage in ["", "a.b", "a.b.c", "....", "\u{0}"] {
        assert!(verifier().verify(garbage).is_err(), "{garbage:?}");
    }
}

#[test]
fn identity_claims_are_required_and_typed() {
    let v = verifier();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("email");
    c["sub"] = json!("CiQ0OGI");
    assert_eq!(v.verify(&sign(Algorithm::RS256, &rsa(), &c)).unwrap().user, "CiQ0OGI", "falls back to sub");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("email");
    assert!(v.verify(&sign(Algorithm::RS256, &rsa(), &c)).is_err(), "no user claim");
    let mut c = claims();
    c["groups"] = json!("admins");
    assert!(v.verify(&sign(Algorithm::RS256, &rsa(), &c)).is_err(), "groups must be a list");
}
