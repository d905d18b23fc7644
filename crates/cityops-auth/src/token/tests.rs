//! Tests of tokens: round trip, the wire form, tampering, time limits, key rotation and malformed input.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, TimeZone, Utc};
use cityops_core::case::Role;

use super::*;

/// 2024-04-11 08:00:00.750 UTC, the start of a morning shift, with a fraction the token drops.
pub(super) fn shift_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 4, 11, 8, 0, 0).unwrap() + TimeDelta::milliseconds(750)
}

pub(super) fn handler() -> User {
    User {
        id: 42,
        username: "wang.wu".into(),
        display_name: "王五".into(),
        role: Role::DepartmentHandler,
        department: Some("sanitation".into()),
        disabled: false,
        password_hash: String::new(),
        created_at: shift_start(),
    }
}

/// The token's claims as plain JSON, read without checking anything.
fn payload_json(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn is_malformed(result: Result<Claims, TokenError>) -> bool {
    matches!(result, Err(TokenError::Malformed { .. }))
}

#[test]
fn issue_then_verify_round_trips() {
    let key = SigningKey::generate();
    let token = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    let claims = verify(&KeyRing::new(key), &token, shift_start()).unwrap();
    let issued_at = Utc.with_ymd_and_hms(2024, 4, 11, 8, 0, 0).unwrap();
    assert_eq!(claims.user_id, 42);
    assert_eq!(claims.username, "wang.wu");
    assert_eq!(claims.role, Role::DepartmentHandler);
    assert_eq!(claims.department.as_deref(), Some("sanitation"));
    assert_eq!(claims.issued_at, issued_at);
    assert_eq!(
        claims.expires_at,
        Utc.with_ymd_and_hms(2024, 4, 11, 20, 0, 0).unwrap()
    );
    assert_eq!(claims.jti.len(), 22);
}

#[test]
fn the_wire_form_is_compact() {
    let key = SigningKey::generate();
    let token = issue(&key, &handler(), shift_start(), TimeDelta::hours(1));
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], "cot1");
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 32);
    let json = payload_json(&token);
    let jti = json["jti"].clone();
    assert_eq!(
        json,
        serde_json::json!({
            "sub": 42, "username": "wang.wu", "role": "department_handler",
            "department": "sanitation", "iat": 1_712_822_400, "exp": 1_712_826_000, "jti": jti,
        })
    );
    let inspector = User {
        role: Role::Inspector,
        department: None,
        ..handler()
    };
    let token = issue(&key, &inspector, shift_start(), DEFAULT_TTL);
    assert!(payload_json(&token).get("department").is_none());
    assert!(token.len() < 300, "{} bytes", token.len());
}

#[test]
fn every_token_has_its_own_id() {
    let key = SigningKey::generate();
    let a = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    let b = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    assert_ne!(payload_json(&a)["jti"], payload_json(&b)["jti"]);
}

#[test]
fn a_tampered_payload_is_refused() {
    let key = SigningKey::generate();
    let token = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    let mut json = payload_json(&token);
    json["role"] = "admin".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap());
    let signature = token.rsplit('.').next().unwrap();
    let forged = format!("cot1.{forged_payload}.{signature}");
    assert_eq!(
        verify(&KeyRing::new(key), &forged, shift_start()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn a_tampered_signature_is_refused() {
    let key = SigningKey::generate();
    let token = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    let ring = KeyRing::new(key);
    // Change the signature's first character: every other character stays, the bytes differ.
    let at = token.rfind('.').unwrap() + 1;
    let first = &token[at..=at];
    let replacement = if first == "A" { "B" } else { "A" };
    let forged = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
    assert_eq!(
        verify(&ring, &forged, shift_start()),
        Err(TokenError::BadSignature)
    );
    let other_key = issue(
        &SigningKey::generate(),
        &handler(),
        shift_start(),
        DEFAULT_TTL,
    );
    assert_eq!(
        verify(&ring, &other_key, shift_start()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn a_token_is_valid_from_its_issue_second_until_its_expiry() {
    let key = SigningKey::generate();
    let token = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    let ring = KeyRing::new(key);
    let issued = Utc.with_ymd_and_hms(2024, 4, 11, 8, 0, 0).unwrap();
    let expires = Utc.with_ymd_and_hms(2024, 4, 11, 20, 0, 0).unwrap();
    let at = |now| verify(&ring, &token, now).map(|_| ()).map_err(|e| e.code());
    assert_eq!(
        at(issued - CLOCK_SKEW - TimeDelta::seconds(1)),
        Err("token_not_yet_valid")
    );
    assert_eq!(at(issued - CLOCK_SKEW), Ok(()));
    assert_eq!(at(issued), Ok(()));
    assert_eq!(at(expires - TimeDelta::milliseconds(1)), Ok(()));
    assert_eq!(at(expires), Err("token_expired"));
    assert_eq!(at(expires + TimeDelta::days(365)), Err("token_expired"));
    assert_eq!(
        verify(&ring, &token, expires),
        Err(TokenError::Expired {
            expired_at: expires
        })
    );
    assert_eq!(
        verify(&ring, &token, issued - TimeDelta::hours(1)),
        Err(TokenError::NotYetValid { valid_from: issued })
    );
}

#[test]
fn odd_lifetimes_neither_panic_nor_outlive_their_end() {
    let key = SigningKey::generate();
    let ring = KeyRing::new(key.clone());
    let negative = issue(&key, &handler(), shift_start(), TimeDelta::minutes(-5));
    assert!(matches!(
        verify(&ring, &negative, shift_start()),
        Err(TokenError::Expired { .. })
    ));
    let endless = issue(&key, &handler(), shift_start(), TimeDelta::MAX);
    assert!(verify(&ring, &endless, shift_start() + TimeDelta::days(36_500)).is_ok());
    assert!(verify(&ring, &endless, DateTime::<Utc>::MAX_UTC).is_err());
}

#[test]
fn a_previous_key_verifies_while_listed_and_never_signs() {
    let old = SigningKey::generate();
    let new = SigningKey::generate();
    let old_token = issue(&old, &handler(), shift_start(), DEFAULT_TTL);

    let during_rotation = KeyRing::new(new.clone()).with_previous(old.clone());
    assert!(verify(&during_rotation, &old_token, shift_start()).is_ok());
    let new_token = issue(
        during_rotation.current(),
        &handler(),
        shift_start(),
        DEFAULT_TTL,
    );
    assert!(verify(&KeyRing::new(new.clone()), &new_token, shift_start()).is_ok());
    assert_eq!(
        verify(&KeyRing::new(old), &new_token, shift_start()),
        Err(TokenError::BadSignature)
    );

    let after_rotation = KeyRing::from(new);
    assert_eq!(
        verify(&after_rotation, &old_token, shift_start()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn a_stored_key_loads_back() {
    let key = SigningKey::generate();
    let bytes = key.to_bytes();
    assert_eq!(bytes.len(), KEY_BYTES);
    assert_ne!(bytes, SigningKey::generate().to_bytes());
    let loaded = SigningKey::from_bytes(&bytes).unwrap();
    let token = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    assert!(verify(&KeyRing::new(loaded), &token, shift_start()).is_ok());
    assert!(SigningKey::from_bytes(&[7; 64]).is_ok());
    assert_eq!(
        SigningKey::from_bytes(&[7; 31]).unwrap_err(),
        KeyError::Length { got: 31 }
    );
    assert!(SigningKey::from_bytes(&[7; 65]).is_err());
    assert!(SigningKey::from_bytes(&[]).is_err());
    assert_eq!(format!("{key:?}"), "SigningKey(***)");
    assert_eq!(
        format!("{:?}", KeyRing::new(key)),
        "KeyRing { current: SigningKey(***), previous: [] }"
    );
}

#[test]
fn malformed_tokens_are_named_so() {
    let key = SigningKey::generate();
    let ring = KeyRing::new(key.clone());
    let token = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let payload = signed.strip_prefix("cot1.").unwrap();
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "cot1".into(),
        "cot1.".into(),
        "cot1..".into(),
        format!("cot2.{payload}.{signature}"),
        format!("COT1.{payload}.{signature}"),
        format!("Bearer {token}"),
        format!("{token}."),
        format!(".{token}"),
        format!("{token}.{signature}"),
        format!("cot1.{payload}.{payload}.{signature}"),
        format!("cot1.{payload}"),
        format!("cot1.{payload}=.{signature}"),
        format!("cot1.{payload}.{signature}="),
        format!("cot1.{payload}!.{signature}"),
        format!("cot1.{payload}.{}", &signature[1..]),
        format!("cot1.{payload}.{signature}AAAA"),
        format!("cot1.{payload}.{}", "A".repeat(MAX_TOKEN_BYTES)),
        format!(
            "cot1.{}.{signature}",
            payload.replace('-', "+").replace('_', "/")
        ),
        "cot1.eyJ9.AAAA".into(),
        "cot1.%%%.AAAA".into(),
        "cot1.\u{4e2d}\u{6587}.AAAA".into(),
    ];
    for case in cases {
        if case == token {
            continue;
        }
        assert!(
            is_malformed(verify(&ring, &case, shift_start())),
            "{case:?} gave {:?}",
            verify(&ring, &case, shift_start())
        );
    }
}

#[test]
fn signed_claims_that_do_not_parse_are_malformed() {
    let key = SigningKey::generate();
    for body in [
        &b"not json"[..],
        b"{}",
        br#"{"sub":"7"}"#,
        br#"{"sub":1,"username":"a","role":"mayor","iat":0,"exp":1,"jti":"x"}"#,
    ] {
        let signed = format!("cot1.{}", URL_SAFE_NO_PAD.encode(body));
        let token = format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()))
        );
        assert_eq!(
            verify(&KeyRing::new(key.clone()), &token, shift_start()),
            Err(TokenError::Malformed {
                reason: "claims are not readable"
            })
        );
    }
}

#[test]
fn error_codes_are_stable() {
    let when = shift_start();
    let codes: Vec<&str> = [
        TokenError::Malformed { reason: "x" },
        TokenError::BadSignature,
        TokenError::Expired { expired_at: when },
        TokenError::NotYetValid { valid_from: when },
    ]
    .iter()
    .map(TokenError::code)
    .collect();
    assert_eq!(
        codes,
        [
            "token_malformed",
            "token_bad_signature",
            "token_expired",
            "token_not_yet_valid"
        ]
    );
    assert_eq!(DEFAULT_TTL, TimeDelta::hours(12));
}
