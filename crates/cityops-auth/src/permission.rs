//! Who may use the endpoints outside the case workflow: one table of permissions and the roles holding each.
//!
//! Steps of the case workflow are not here: [`cityops_core::case::ActionKind::roles`] decides them, with
//! the department and inspector scoping the state machine applies. A permission answers only "may this
//! role use this endpoint at all"; which rows a role then sees (a department handler only its
//! department's cases) is the query's business.
//!
//! The administrator manages users and configuration and takes no step in the workflow (see
//! [`Role::Admin`]); the supervisor (督查) reads everything needed to evaluate and audit.

use cityops_core::case::Role;
use serde::{Deserialize, Serialize};

use crate::token::Claims;

/// A right to use a group of endpoints, named `area.verb` in the API and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    /// List and read cases (each role sees the cases its query allows).
    #[serde(rename = "cases.read")]
    CasesRead,
    /// File a new case (信息收集): the operator for hotline calls and leader instructions, the inspector
    /// for patrol reports, the shift lead for anything. Sensor and camera cases are filed by the system.
    #[serde(rename = "cases.report")]
    CasesReport,
    #[serde(rename = "incidents.read")]
    IncidentsRead,
    /// Acknowledge a sensor or camera incident and turn it into a case: the acceptance desk's job.
    #[serde(rename = "incidents.acknowledge")]
    IncidentsAcknowledge,
    /// Devices and their last values, the live map, the websocket.
    #[serde(rename = "devices.read")]
    DevicesRead,
    /// Register, change or remove a device: configuration, like the rules that watch it.
    #[serde(rename = "devices.register")]
    DevicesRegister,
    /// Categories, time limits, working calendars, departments, grid, rules and indicator formulas.
    #[serde(rename = "catalogue.manage")]
    CatalogueManage,
    /// The user directory (names, roles, departments): to send an inspector, to evaluate a person.
    #[serde(rename = "users.read")]
    UsersRead,
    /// Create users, change roles and departments, disable, reset passwords.
    #[serde(rename = "users.manage")]
    UsersManage,
    /// The indicators and scores of 综合评价, per department, grid, role and person.
    #[serde(rename = "evaluation.read")]
    EvaluationRead,
    /// Who did what and when: logins, user changes, every case step.
    #[serde(rename = "audit.read")]
    AuditRead,
    /// The server's own Prometheus metrics (queues, connections), not the city's.
    #[serde(rename = "metrics.read")]
    MetricsRead,
    /// The run cards (责任卡): which inspectors answer first for a piece of the grid.
    #[serde(rename = "run_cards.read")]
    RunCardsRead,
    /// Set or remove run card entries: the shift lead organises the teams.
    #[serde(rename = "run_cards.manage")]
    RunCardsManage,
    /// Draw, change or remove geofences (key projects, no-stall zones, construction sites); everyone
    /// who reads cases sees them.
    #[serde(rename = "geofences.manage")]
    GeofencesManage,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: &'static [Permission] = &[
        Permission::CasesRead,
        Permission::CasesReport,
        Permission::IncidentsRead,
        Permission::IncidentsAcknowledge,
        Permission::DevicesRead,
        Permission::DevicesRegister,
        Permission::CatalogueManage,
        Permission::UsersRead,
        Permission::UsersManage,
        Permission::EvaluationRead,
        Permission::AuditRead,
        Permission::MetricsRead,
        Permission::RunCardsRead,
        Permission::RunCardsManage,
        Permission::GeofencesManage,
    ];

    /// The roles holding this permission: the table itself.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::CasesRead | Permission::IncidentsRead | Permission::DevicesRead => {
                Role::ALL
            }
            Permission::CasesReport => &[Operator, ShiftLead, Inspector],
            Permission::IncidentsAcknowledge => &[Operator, ShiftLead],
            Permission::UsersRead => &[Operator, ShiftLead, Supervisor, Admin],
            Permission::EvaluationRead => &[ShiftLead, Supervisor, Admin],
            Permission::AuditRead => &[Supervisor, Admin],
            Permission::RunCardsRead => &[ShiftLead, Dispatcher, Supervisor, Admin],
            Permission::RunCardsManage | Permission::GeofencesManage => &[ShiftLead, Admin],
            Permission::DevicesRegister
            | Permission::CatalogueManage
            | Permission::UsersManage
            | Permission::MetricsRead => &[Admin],
        }
    }

    pub fn granted_to(self, role: Role) -> bool {
        self.roles().contains(&role)
    }

    /// The permissions of `role`, for the UI to show only what the user can use.
    pub fn of_role(role: Role) -> Vec<Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(|permission| permission.granted_to(role))
            .collect()
    }

    /// The API name, e.g. `users.manage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::CasesRead => "cases.read",
            Permission::CasesReport => "cases.report",
            Permission::IncidentsRead => "incidents.read",
            Permission::IncidentsAcknowledge => "incidents.acknowledge",
            Permission::DevicesRead => "devices.read",
            Permission::DevicesRegister => "devices.register",
            Permission::CatalogueManage => "catalogue.manage",
            Permission::UsersRead => "users.read",
            Permission::UsersManage => "users.manage",
            Permission::EvaluationRead => "evaluation.read",
            Permission::AuditRead => "audit.read",
            Permission::MetricsRead => "metrics.read",
            Permission::RunCardsRead => "run_cards.read",
            Permission::RunCardsManage => "run_cards.manage",
            Permission::GeofencesManage => "geofences.manage",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL
            .iter()
            .copied()
            .find(|permission| permission.as_str() == name)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller's role may not do this (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{role} may not {}; {}", describe(.permission), who_may(.allowed))]
pub struct Forbidden {
    pub role: Role,
    /// The permission checked, when the check was by permission rather than by a list of roles.
    pub permission: Option<Permission>,
    pub allowed: Vec<Role>,
}

impl Forbidden {
    /// A stable code for the API's error body.
    pub fn code(&self) -> &'static str {
        "forbidden"
    }
}

impl Claims {
    /// Succeeds if the caller's role is one of `allowed`.
    pub fn require_role(&self, allowed: &[Role]) -> Result<(), Forbidden> {
        if allowed.contains(&self.role) {
            return Ok(());
        }
        Err(Forbidden {
            role: self.role,
            permission: None,
            allowed: allowed.to_vec(),
        })
    }

    /// Succeeds if the caller's role holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), Forbidden> {
        self.require_role(permission.roles())
            .map_err(|forbidden| Forbidden {
                permission: Some(permission),
                ..forbidden
            })
    }

    pub fn can(&self, permission: Permission) -> bool {
        permission.granted_to(self.role)
    }
}

fn describe(permission: &Option<Permission>) -> String {
    match permission {
        Some(permission) => format!("use {permission}"),
        None => "do this".to_string(),
    }
}

fn who_may(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "nobody may".to_string();
    }
    let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
    format!("only {} may", names.join(", "))
}

#[cfg(test)]
mod tests;
