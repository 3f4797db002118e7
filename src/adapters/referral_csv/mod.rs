//! `referral-csv`: the student-support referral CSV (one row per referral) that any SIS or spreadsheet can
//! produce. Each row is joined to its student in a OneRoster roster; the roster records travel with the
//! referral so the bundle carries the Patient and their guardians. The format is documented in the README.

mod decode;

pub use decode::{CONTEXT, RECORD_KINDS, REFERRALS, ReferralSource};
