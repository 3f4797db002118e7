//! Unit tests of the FHIRPath engine: navigation, functions, operators and three-valued logic.

use super::*;
use serde_json::json;

fn check(expr: &str, resource: &Value) -> Option<bool> {
    Expression::compile(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .check(resource, Env::of(resource))
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn count(expr: &str, resource: &Value) -> usize {
    let compiled = Expression::compile(expr).unwrap();
    compiled
        .evaluate(resource, Env::of(resource))
        .unwrap()
        .len()
}

#[test]
fn paths_flatten_arrays_and_find_choice_elements() {
    let obs = json!({"resourceType": "Observation", "valueQuantity": {"value": 1},
        "component": [{"code": {"coding": [{"code": "a"}, {"code": "b"}]}}, {"code": {"coding": [{"code": "c"}]}}]});
    assert_eq!(count("component.code.coding.code", &obs), 3);
    assert_eq!(count("Observation.component", &obs), 2);
    assert_eq!(count("Patient.component", &obs), 0);
    assert_eq!(check("value.exists()", &obs), Some(true));
    assert_eq!(
        check("component[1].code.coding.code = 'c'", &obs),
        Some(true)
    );
    assert_eq!(
        check("dataAbsentReason.empty() or value.empty()", &obs),
        Some(true)
    );
}

#[test]
fn three_valued_logic() {
    let r = json!({"resourceType": "Basic", "a": true, "b": false});
    assert_eq!(check("a and b", &r), Some(false));
    assert_eq!(check("a and missing", &r), None);
    assert_eq!(check("b and missing", &r), Some(false));
    assert_eq!(check("a or missing", &r), Some(true));
    assert_eq!(check("b implies missing", &r), Some(true));
    assert_eq!(check("missing implies b", &r), None);
    assert_eq!(check("a xor b", &r), Some(true));
    assert_eq!(check("(a = missing).empty()", &r), Some(true));
    assert_eq!(check("a != b", &r), Some(true));
    assert_eq!(check("a.exists().not()", &r), Some(false));
    assert_eq!(check("missing.exists().not()", &r), Some(true));
    assert_eq!(check("a.exists($this = false).not()", &r), Some(true));
    assert_eq!(check("children().count() > 2", &r), Some(false));
    assert_eq!(check("children().count() = 2", &r), Some(true));
    assert_eq!(check("missing.not()", &r), None);
}

#[test]
fn functions_the_invariants_use() {
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:a", "resource": {"resourceType": "Patient", "id": "1"}, "request": {"method": "PUT"}},
        {"fullUrl": "urn:a", "resource": {"resourceType": "Patient", "id": "2", "meta": {"versionId": "2"}}, "request": {"method": "PUT"}},
        {"fullUrl": "urn:b"}
    ]});
    assert_eq!(
        check(
            "entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
            &bundle
        ),
        Some(true)
    );
    assert_eq!(check("entry.fullUrl.isDistinct()", &bundle), Some(false));
    assert_eq!(
        check(
            "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction'))",
            &bundle
        ),
        Some(false)
    );
    assert_eq!(check("entry.count() + 1 = 4", &bundle), Some(true));
    assert_eq!(
        check("entry.first().resource.is(Patient)", &bundle),
        Some(true)
    );
    assert_eq!(
        check("entry.resource.ofType(Patient).count() = 2", &bundle),
        Some(true)
    );
    assert_eq!(check("iif(type = 'batch', 1, 2) = 2", &bundle), Some(true));
    assert_eq!(
        check("entry.fullUrl.first().startsWith('urn:')", &bundle),
        Some(true)
    );
    assert_eq!(
        check("entry.fullUrl.first().matches('^urn:[a-z]$')", &bundle),
        Some(true)
    );
    assert_eq!(
        check("'#'+entry.resource.id.first() in ('#1' | '#3')", &bundle),
        Some(true)
    );
    assert_eq!(
        check("entry.fullUrl.first().substring(1) = 'rn:a'", &bundle),
        Some(true)
    );
    assert_eq!(
        check("children().count() > id.count()", &bundle),
        Some(true)
    );
    assert_eq!(
        check("descendants().where($this = 'urn:b').exists()", &bundle),
        Some(true)
    );
    assert_eq!(check("('a' | 'b' | 'a').count() = 2", &bundle), Some(true));
    assert_eq!(
        check(
            "{}.empty() and 'x'.hasValue() and entry.hasValue().not()",
            &bundle
        ),
        Some(true)
    );
}

#[test]
fn dates_compare_at_the_precision_both_have() {
    let r = json!({"resourceType": "Encounter", "a": "2024-02-01", "b": "2024-02", "c": "2024-01-31T23:00:00-05:00", "d": "2024-02-01T03:00:00Z"});
    assert_eq!(check("a >= b", &r), None);
    assert_eq!(check("b < a", &r), None);
    assert_eq!(check("c < a", &r), Some(true));
    assert_eq!(check("c <= d", &r), Some(false));
    assert_eq!(check("d <= c", &r), Some(true));
    assert_eq!(check("'2023' < a", &r), Some(true));
}

#[test]
fn resolve_stays_inside_the_document() {
    let task = json!({"resourceType": "Task", "focus": {"reference": "#sr"},
        "contained": [{"resourceType": "ServiceRequest", "id": "sr"}],
        "owner": {"reference": "Organization/x"}});
    assert_eq!(
        check("focus.resolve().is(ServiceRequest)", &task),
        Some(true)
    );
    assert_eq!(check("owner.resolve().empty()", &task), Some(true));
    let bundle = json!({"resourceType": "Bundle", "entry": [
        {"fullUrl": "http://x/fhir/Organization/x", "resource": {"resourceType": "Organization", "id": "x"}}]});
    let expr = Expression::compile("owner.resolve().is(Organization)").unwrap();
    let env = Env {
        bundle: Some(&bundle),
        ..Env::of(&task)
    };
    assert_eq!(expr.check(&task, env), Ok(Some(true)));
}

#[test]
fn evaluation_errors_are_typed() {
    let r = json!({"resourceType": "Basic", "a": [1, 2], "s": ["x", "y"]});
    let err = |expr: &str| {
        Expression::compile(expr)
            .unwrap()
            .evaluate(&r, Env::of(&r))
            .unwrap_err()
    };
    assert!(matches!(
        err("a and true"),
        EvalError::NotSingleton { count: 2, .. }
    ));
    assert!(matches!(
        err("s.startsWith('x')"),
        EvalError::NotSingleton { .. }
    ));
    assert!(matches!(err("a.first() < 'x'"), EvalError::Type { .. }));
    assert!(matches!(
        err("s.first().matches(s.last() + '(')"),
        EvalError::BadPattern(_)
    ));
}

#[test]
fn runaway_work_is_stopped() {
    let r = json!({"resourceType": "Basic", "a": [{"b": [1, 2, 3, 4, 5, 6, 7, 8]}, {"b": [1, 2]}]});
    // Each select() maps every item to the whole document: 14 nodes, then 14², 14³...
    let nested = "descendants()".to_owned() + &".select(%resource.descendants())".repeat(6);
    let expensive = Expression::compile(&format!("{nested}.count()")).unwrap();
    let outcome = expensive.evaluate(&r, Env::of(&r));
    assert!(matches!(outcome, Err(EvalError::TooCostly)), "{outcome:?}");
    let growing = "'ab'".to_owned() + &".replace('a', 'aaaaaaaa')".repeat(10);
    let growing = Expression::compile(&growing).unwrap();
    let outcome = growing.evaluate(&r, Env::of(&r));
    assert!(matches!(outcome, Err(EvalError::TooCostly)), "{outcome:?}");
}
