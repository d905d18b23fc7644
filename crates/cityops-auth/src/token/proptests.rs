//! Property tests of token checking: no input panics, and no changed token passes.

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use super::tests::{handler, shift_start};
use super::*;

/// Characters a token is made of, and the few that a damaged one might contain.
const TOKEN_CHARS: &[char] = &[
    'A', 'B', 'Z', 'a', 'b', 'z', '0', '1', '9', '-', '_', '.', '=', '+', '/', ' ', '中',
];

fn ring_and_token() -> (KeyRing, String) {
    // A fixed key: the properties are about the checking, and a fixed key makes failures repeatable.
    let key = SigningKey::from_bytes(&[0x5a; KEY_BYTES]).unwrap();
    let token = issue(&key, &handler(), shift_start(), DEFAULT_TTL);
    (KeyRing::new(key), token)
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic_and_never_pass(input in any::<String>()) {
        let (ring, _) = ring_and_token();
        prop_assert!(verify(&ring, &input, shift_start()).is_err());
    }

    #[test]
    fn token_shaped_strings_never_pass(
        payload in "[A-Za-z0-9_-]{0,200}",
        signature in "[A-Za-z0-9_-]{0,60}",
    ) {
        let (ring, _) = ring_and_token();
        let result = verify(&ring, &format!("cot1.{payload}.{signature}"), shift_start());
        prop_assert!(
            matches!(result, Err(TokenError::Malformed { .. } | TokenError::BadSignature)),
            "{:?}", result
        );
    }

    #[test]
    fn any_changed_character_is_refused(
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(TOKEN_CHARS),
    ) {
        let (ring, token) = ring_and_token();
        let mut chars: Vec<char> = token.chars().collect();
        let at = position.index(chars.len());
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let changed: String = chars.into_iter().collect();
        prop_assert!(verify(&ring, &changed, shift_start()).is_err(), "{} passed", changed);
    }

    #[test]
    fn any_clock_gives_an_answer_and_the_right_one(seconds in -8_000_000_000_000_i64..8_000_000_000_000) {
        let (ring, token) = ring_and_token();
        let now = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap();
        let issued = DateTime::<Utc>::from_timestamp(shift_start().timestamp(), 0).unwrap();
        let valid = now >= issued - CLOCK_SKEW && now < issued + DEFAULT_TTL;
        prop_assert_eq!(verify(&ring, &token, now).is_ok(), valid);
    }
}
