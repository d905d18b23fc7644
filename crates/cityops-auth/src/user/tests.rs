//! Tests of account validation: usernames, display names, departments per role, and the stored record.

use chrono::TimeZone;

use super::*;

/// Checks a username; `expect` is "ok" or the error's code.
fn check_username(username: &str, expect: &str) {
    let got = validate_username(username).map_or_else(|e| e.code(), |()| "ok");
    assert_eq!(got, expect, "username {username:?}");
}

#[test]
fn usernames() {
    let long = "a".repeat(32);
    let too_long = "a".repeat(33);
    let cases = [
        ("zhang.san", "ok"),
        ("op_01", "ok"),
        ("insp-007", "ok"),
        ("abc", "ok"),
        ("007", "ok"),
        (long.as_str(), "ok"),
        ("ab", "username_length"),
        ("", "username_length"),
        (too_long.as_str(), "username_length"),
        ("Zhang", "username_characters"),
        ("zhang san", "username_characters"),
        ("张三丰", "username_characters"),
        ("zhang@city", "username_characters"),
        ("..", "username_length"),
        ("...", "username_characters"),
        ("-rf", "username_characters"),
        ("_admin", "username_characters"),
        (".hidden", "username_characters"),
        ("a\u{0}b", "username_characters"),
    ];
    for (username, expect) in cases {
        check_username(username, expect);
    }
}

#[test]
fn display_names() {
    let cases = [
        ("张三", "ok"),
        ("Zhang San (东城)", "ok"),
        ("", "display_name_empty"),
        ("   ", "display_name_empty"),
        (" 张三", "display_name_characters"),
        ("张三\n", "display_name_characters"),
        ("张\u{7}三", "display_name_characters"),
    ];
    for (name, expect) in cases {
        let got = validate_display_name(name).map_or_else(|e| e.code(), |()| "ok");
        assert_eq!(got, expect, "display name {name:?}");
    }
    assert_eq!(
        validate_display_name(&"城".repeat(64)).map_err(|e| e.code()),
        Ok(())
    );
    assert_eq!(
        validate_display_name(&"城".repeat(65)).map_err(|e| e.code()),
        Err("display_name_too_long")
    );
}

#[test]
fn department_is_required_for_handlers_and_refused_for_everyone_else() {
    for &role in Role::ALL {
        let with = validate_department(role, Some("sanitation")).map_err(|e| e.code());
        let without = validate_department(role, None).map_err(|e| e.code());
        if role == Role::DepartmentHandler {
            assert_eq!(with, Ok(()));
            assert_eq!(without, Err("department_required"));
        } else {
            assert_eq!(with, Err("department_not_allowed"), "{role}");
            assert_eq!(without, Ok(()), "{role}");
        }
    }
    let handler = Role::DepartmentHandler;
    let too_long = "d".repeat(MAX_ID_CHARS + 1);
    for bad in ["", "water works", "gas\t", too_long.as_str()] {
        assert_eq!(
            validate_department(handler, Some(bad)).map_err(|e| e.code()),
            Err("department_invalid"),
            "{bad:?}"
        );
    }
}

#[test]
fn a_new_user_is_checked_field_by_field_then_hashed() {
    let json = r#"{"username":"wang.wu","display_name":"王五","role":"department_handler",
        "department":"sanitation","password":"sweep-the-streets"}"#;
    let new_user: NewUser = serde_json::from_str(json).unwrap();
    assert!(!format!("{new_user:?}").contains("sweep"));
    let policy = PasswordPolicy::default();
    let phc = new_user.prepare(&policy).unwrap();
    assert!(crate::verify_password("sweep-the-streets", &phc));

    let broken = |edit: fn(&mut NewUser)| {
        let mut user = new_user.clone();
        edit(&mut user);
        let error = user.prepare(&policy).unwrap_err();
        (error.field(), error.code())
    };
    assert_eq!(
        broken(|u| u.username = "W".into()),
        ("username", "username_characters")
    );
    assert_eq!(
        broken(|u| u.display_name = String::new()),
        ("display_name", "display_name_empty")
    );
    assert_eq!(
        broken(|u| u.role = Role::Dispatcher),
        ("department", "department_not_allowed")
    );
    assert_eq!(
        broken(|u| u.password = Password::new("wang.wu")),
        ("password", "password_too_short")
    );
    assert_eq!(
        broken(|u| {
            u.username = "wang.wu.2024".into();
            u.password = Password::new("Wang.Wu.2024");
        }),
        ("password", "password_same_as_username")
    );
}

#[test]
fn a_new_user_request_rejects_unknown_fields() {
    let json = r#"{"username":"li.si","display_name":"李四","role":"admin",
        "password":"p@ssw0rd-long","disabled":false}"#;
    assert!(serde_json::from_str::<NewUser>(json).is_err());
}

#[test]
fn a_user_serializes_without_its_hash_and_debug_hides_it() {
    let user = User {
        id: 7,
        username: "zhao.liu".into(),
        display_name: "赵六".into(),
        role: Role::Inspector,
        department: None,
        disabled: false,
        password_hash: "$argon2id$v=19$m=19456,t=3,p=1$c2FsdA$aGFzaA".into(),
        created_at: Utc.with_ymd_and_hms(2024, 4, 11, 8, 0, 0).unwrap(),
    };
    let json = serde_json::to_value(&user).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": 7, "username": "zhao.liu", "display_name": "赵六", "role": "inspector",
            "department": null, "disabled": false, "created_at": 1_712_822_400_000_i64,
        })
    );
    assert!(!format!("{user:?}").contains("argon2"));
}
