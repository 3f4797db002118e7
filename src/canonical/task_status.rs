//! The Gravity referral workflow for Task status (DESIGN.md section 3): which statuses a referral Task may
//! have, which changes are allowed, who may make them, and when a reason is required.

use std::fmt;
use std::str::FromStr;

/// The statuses of the SDOHCC referral Task status value set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Sent, not yet seen by the receiver.
    Requested,
    /// Seen by the receiver, not yet decided.
    Received,
    /// The receiver will act on it.
    Accepted,
    /// The receiver will not act on it.
    Rejected,
    /// The requester withdrew it.
    Cancelled,
    /// Work is paused.
    OnHold,
    /// Work has started.
    InProgress,
    /// The service was provided.
    Completed,
    /// The service could not be provided.
    Failed,
}

/// Who is changing the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The organization that sent the referral.
    Requester,
    /// The organization that received it.
    Receiver,
}

/// Why a status change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The workflow has no such step.
    #[error("a referral Task cannot go from '{from}' to '{to}' (allowed from '{from}': {allowed})")]
    NotAllowed {
        /// Current status.
        from: TaskStatus,
        /// Requested status.
        to: TaskStatus,
        /// What is allowed instead.
        allowed: String,
    },
    /// The step belongs to the other party.
    #[error("only the {expected} may set a referral Task to '{to}'")]
    WrongActor {
        /// Requested status.
        to: TaskStatus,
        /// Who may.
        expected: &'static str,
    },
    /// A reason is required and missing.
    #[error("statusReason.text is required when a referral Task is set to '{0}'")]
    ReasonRequired(TaskStatus),
}

/// Every status, in workflow order.
pub const ALL: &[TaskStatus] = &[
    TaskStatus::Requested,
    TaskStatus::Received,
    TaskStatus::Accepted,
    TaskStatus::Rejected,
    TaskStatus::Cancelled,
    TaskStatus::OnHold,
    TaskStatus::InProgress,
    TaskStatus::Completed,
    TaskStatus::Failed,
];

impl TaskStatus {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Received => "received",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::OnHold => "on-hold",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Statuses reachable from this one.
    pub fn next(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Requested | Received => &[Received, Accepted, Rejected, Cancelled],
            Accepted => &[InProgress, OnHold, Cancelled],
            InProgress => &[Completed, Failed, OnHold, Cancelled],
            OnHold => &[InProgress, Cancelled],
            Rejected | Cancelled | Completed | Failed => &[],
        }
    }

    /// Whether a change to this status needs `statusReason`.
    pub fn needs_reason(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Cancelled | Self::OnHold | Self::Failed
        )
    }

    /// Check a change of status by an actor, with or without a reason.
    pub fn transition(
        self,
        to: TaskStatus,
        actor: Actor,
        has_reason: bool,
    ) -> Result<TaskStatus, TransitionError> {
        if !self.next().contains(&to) {
            let allowed = self
                .next()
                .iter()
                .map(|s| s.code())
                .collect::<Vec<_>>()
                .join(", ");
            let allowed = if allowed.is_empty() {
                "nothing, it is final".to_owned()
            } else {
                allowed
            };
            return Err(TransitionError::NotAllowed {
                from: self,
                to,
                allowed,
            });
        }
        match (to, actor) {
            (TaskStatus::Cancelled, Actor::Receiver) => {
                return Err(TransitionError::WrongActor {
                    to,
                    expected: "requester",
                });
            }
            (TaskStatus::Cancelled, Actor::Requester) => {}
            (_, Actor::Requester) => {
                return Err(TransitionError::WrongActor {
                    to,
                    expected: "receiver",
                });
            }
            _ => {}
        }
        if to.needs_reason() && !has_reason {
            return Err(TransitionError::ReasonRequired(to));
        }
        Ok(to)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for TaskStatus {
    type Err = String;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .copied()
            .find(|s| s.code() == code)
            .ok_or_else(|| {
                let known = ALL.iter().map(|s| s.code()).collect::<Vec<_>>().join(", ");
                format!("'{code}' is not a referral Task status (expected one of: {known})")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn receiver_walks_the_happy_path() {
        let s = Requested
            .transition(Accepted, Actor::Receiver, false)
            .unwrap();
        let s = s.transition(InProgress, Actor::Receiver, false).unwrap();
        assert_eq!(
            s.transition(Completed, Actor::Receiver, false).unwrap(),
            Completed
        );
    }

    #[test]
    fn refuses_what_the_workflow_does_not_allow() {
        assert!(matches!(
            Requested.transition(Completed, Actor::Receiver, false),
            Err(TransitionError::NotAllowed { .. })
        ));
        assert!(matches!(
            Completed.transition(InProgress, Actor::Receiver, false),
            Err(TransitionError::NotAllowed { .. })
        ));
        assert_eq!(
            Requested.transition(Cancelled, Actor::Receiver, true),
            Err(TransitionError::WrongActor {
                to: Cancelled,
                expected: "requester"
            })
        );
        assert_eq!(
            Requested.transition(Accepted, Actor::Requester, false),
            Err(TransitionError::WrongActor {
                to: Accepted,
                expected: "receiver"
            })
        );
        assert_eq!(
            Requested.transition(Rejected, Actor::Receiver, false),
            Err(TransitionError::ReasonRequired(Rejected))
        );
        assert_eq!(
            Requested.transition(Rejected, Actor::Receiver, true),
            Ok(Rejected)
        );
    }

    #[test]
    fn parses_codes() {
        assert_eq!("on-hold".parse::<TaskStatus>(), Ok(OnHold));
        assert!(
            "draft"
                .parse::<TaskStatus>()
                .unwrap_err()
                .contains("expected one of")
        );
    }
}
