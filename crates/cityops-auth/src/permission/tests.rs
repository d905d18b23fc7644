//! The permission table written out by hand, every permission against every role, and the checks on claims.

use chrono::{TimeZone, Utc};

use super::*;

/// Roles in the column order of the table below.
const ROLES: [Role; 7] = [
    Role::Operator,
    Role::ShiftLead,
    Role::Dispatcher,
    Role::DepartmentHandler,
    Role::Inspector,
    Role::Supervisor,
    Role::Admin,
];

/// `x`: granted, `.`: refused. Written out independently of `Permission::roles` so a change to either
/// shows up here as a diff someone has to read.
#[rustfmt::skip]
const TABLE: &[(&str, &str)] = &[
    //                         op sl dp dh in sv ad
    ("cases.read",            "x  x  x  x  x  x  x"),
    ("cases.report",          "x  x  .  .  x  .  ."),
    ("incidents.read",        "x  x  x  x  x  x  x"),
    ("incidents.acknowledge", "x  x  .  .  .  .  ."),
    ("devices.read",          "x  x  x  x  x  x  x"),
    ("devices.register",      ".  .  .  .  .  .  x"),
    ("catalogue.manage",      ".  .  .  .  .  .  x"),
    ("users.read",            "x  x  .  .  .  x  x"),
    ("users.manage",          ".  .  .  .  .  .  x"),
    ("evaluation.read",       ".  x  .  .  .  x  x"),
    ("audit.read",            ".  .  .  .  .  x  x"),
    ("metrics.read",          ".  .  .  .  .  .  x"),
    ("run_cards.read",        ".  x  x  .  .  x  x"),
    ("run_cards.manage",      ".  x  .  .  .  .  x"),
    ("geofences.manage",      ".  x  .  .  .  .  x"),
];

#[test]
fn every_permission_for_every_role() {
    assert_eq!(ROLES.len(), Role::ALL.len());
    assert_eq!(TABLE.len(), Permission::ALL.len());
    for (row, (name, marks)) in TABLE.iter().enumerate() {
        let permission = Permission::parse(name).unwrap_or_else(|| panic!("unknown {name}"));
        assert_eq!(permission, Permission::ALL[row], "table order");
        let marks: Vec<&str> = marks.split_whitespace().collect();
        assert_eq!(marks.len(), ROLES.len(), "{name}");
        for (role, mark) in ROLES.iter().zip(marks) {
            let expected = mark == "x";
            assert_eq!(permission.granted_to(*role), expected, "{name} for {role}");
            let claims = claims(*role);
            assert_eq!(claims.can(permission), expected, "{name} for {role}");
            assert_eq!(
                claims.require(permission).is_ok(),
                expected,
                "{name} for {role}"
            );
        }
    }
}

#[test]
fn names_are_stable_and_serde_agrees() {
    for &permission in Permission::ALL {
        assert_eq!(Permission::parse(permission.as_str()), Some(permission));
        assert_eq!(
            serde_json::to_string(&permission).unwrap(),
            format!("\"{permission}\"")
        );
        assert_eq!(
            serde_json::from_str::<Permission>(&format!("\"{permission}\"")).unwrap(),
            permission
        );
    }
    assert_eq!(Permission::parse("users.delete"), None);
}

#[test]
fn the_administrator_files_nothing_and_a_handler_only_reads() {
    // Filing cases and acknowledging alarms are steps of the workflow, which the administrator never takes.
    let admin: Vec<Permission> = Permission::ALL
        .iter()
        .copied()
        .filter(|p| ![Permission::CasesReport, Permission::IncidentsAcknowledge].contains(p))
        .collect();
    assert_eq!(Permission::of_role(Role::Admin), admin);
    assert_eq!(
        Permission::of_role(Role::DepartmentHandler),
        [
            Permission::CasesRead,
            Permission::IncidentsRead,
            Permission::DevicesRead
        ]
    );
}

#[test]
fn require_role_names_who_may() {
    let operator = claims(Role::Operator);
    assert_eq!(
        operator.require_role(&[Role::Operator, Role::ShiftLead]),
        Ok(())
    );
    let refused = operator
        .require_role(&[Role::ShiftLead, Role::Supervisor])
        .unwrap_err();
    assert_eq!(refused.code(), "forbidden");
    assert_eq!(
        refused.to_string(),
        "operator may not do this; only shift_lead, supervisor may"
    );
    assert_eq!(
        operator.require_role(&[]).unwrap_err().to_string(),
        "operator may not do this; nobody may"
    );
    let refused = operator.require(Permission::UsersManage).unwrap_err();
    assert_eq!(refused.permission, Some(Permission::UsersManage));
    assert_eq!(
        refused.to_string(),
        "operator may not use users.manage; only admin may"
    );
}

fn claims(role: Role) -> Claims {
    let issued_at = Utc.with_ymd_and_hms(2024, 4, 11, 8, 0, 0).unwrap();
    Claims {
        user_id: 1,
        username: "someone".into(),
        role,
        department: (role == Role::DepartmentHandler).then(|| "sanitation".into()),
        issued_at,
        expires_at: issued_at + crate::DEFAULT_TTL,
        jti: "test".into(),
    }
}
