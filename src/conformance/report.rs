//! Reports of a suite run: a readable summary, JUnit XML (for CI dashboards) and JSON.

use super::runner::SuiteResult;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;

/// The readable summary: one line per case, failures indented, then the totals.
pub fn text(result: &SuiteResult) -> String {
    let mut out = String::new();
    for case in &result.cases {
        let mark = if case.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!(
            "{mark} {} / {} ({})\n",
            case.mapping,
            case.name,
            case.path.display()
        ));
        for failure in &case.failures {
            out.push_str(&format!("     - {failure}\n"));
        }
    }
    for missing in &result.mappings_without_cases {
        out.push_str(&format!("FAIL {missing}\n"));
    }
    out.push_str(&format!(
        "\n{} case(s): {} passed, {} failed; {} mapping(s) without cases\n",
        result.cases.len(),
        result.passed(),
        result.cases.len() - result.passed(),
        result.mappings_without_cases.len()
    ));
    out
}

/// JUnit XML: one test suite per mapping, one test case per case.
pub fn junit(result: &SuiteResult) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("onedoor-conformance");
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for case in &result.cases {
        let status = if case.passed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(case.failures.join("\n"));
            status
        };
        let mut test = TestCase::new(case.name.clone(), status);
        test.set_classname(format!("{}.{}", case.mapping, case.path.display()))
            .set_time(case.duration);
        suites
            .entry(&case.mapping)
            .or_insert_with(|| TestSuite::new(case.mapping.clone()))
            .add_test_case(test);
    }
    if !result.mappings_without_cases.is_empty() {
        let mut suite = TestSuite::new("mappings-without-cases");
        for missing in &result.mappings_without_cases {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(missing.clone());
            suite.add_test_case(TestCase::new(missing.clone(), status));
        }
        report.add_test_suite(suite);
    }
    report.add_test_suites(suites.into_values());
    report.to_string()
}

/// The result as JSON.
pub fn json(result: &SuiteResult) -> serde_json::Result<String> {
    serde_json::to_string_pretty(result)
}
