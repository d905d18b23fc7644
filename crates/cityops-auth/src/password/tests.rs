//! Tests of password hashing: round trips, the PHC format, damaged hashes and rehash decisions.

use super::*;

#[test]
fn hash_then_verify_round_trips_and_rejects_a_wrong_password() {
    let phc = hash_password("correct horse battery").unwrap();
    assert!(verify_password("correct horse battery", &phc));
    assert!(!verify_password("correct horse battery ", &phc));
    assert!(!verify_password("Correct horse battery", &phc));
    assert!(!verify_password("", &phc));
}

#[test]
fn the_phc_string_names_argon2id_and_todays_parameters() {
    let phc = hash_password("s3cret-passw0rd").unwrap();
    assert!(
        phc.starts_with("$argon2id$v=19$m=19456,t=3,p=1$"),
        "unexpected PHC string {phc}"
    );
    assert!(!needs_rehash(&phc));
}

#[test]
fn every_hash_gets_its_own_salt() {
    let a = hash_password("same password").unwrap();
    let b = hash_password("same password").unwrap();
    assert_ne!(a, b);
    assert!(verify_password("same password", &a));
    assert!(verify_password("same password", &b));
}

#[test]
fn a_damaged_or_foreign_hash_matches_nothing() {
    let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, cheap_params())
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    for phc in [
        "",
        "plain text",
        "$argon2id$",
        "$argon2id$v=19$m=8,t=1,p=1$",
        &argon2i,
    ] {
        assert!(!verify_password("pw", phc), "{phc:?} should match nothing");
        assert!(needs_rehash(phc), "{phc:?} should need a rehash");
    }
}

#[test]
fn a_hash_with_older_parameters_still_verifies_but_needs_a_rehash() {
    let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, cheap_params())
        .hash_password(b"old password", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    assert!(verify_password("old password", &old));
    assert!(!verify_password("other password", &old));
    assert!(needs_rehash(&old));
}

#[test]
fn an_unknown_user_never_logs_in() {
    assert!(!verify_password_for_login("anything", None));
    assert!(!verify_password_for_login("", None));
    let phc = hash_password("known user pw").unwrap();
    assert!(verify_password_for_login("known user pw", Some(&phc)));
}

#[test]
fn a_password_never_prints() {
    let password: Password = serde_json::from_str("\"hunter2hunter2\"").unwrap();
    assert_eq!(password.expose(), "hunter2hunter2");
    assert_eq!(format!("{password:?}"), "***");
    let wrapped = Some(Password::new("hunter2hunter2"));
    assert!(!format!("{wrapped:?}").contains("hunter2"));
}

/// Parameters far below today's, standing for hashes stored by an older release.
fn cheap_params() -> Params {
    Params::new(64, 1, 1, None).unwrap()
}
