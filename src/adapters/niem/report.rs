//! One NIBRS `Report`, joined: each victim with their person, the offenses and locations linked to them,
//! their relationships to the offenders, and the triggers a follow-up table can match (relationship codes,
//! `circumstance:NN`, `factor:X`, `child`).

use serde_json::{Value, json};
use std::collections::HashMap;

/// Ages NIBRS gives as text that are always minors.
const INFANT_AGES: &[&str] = &["NEONATAL", "NEWBORN", "BABY", "NN", "NB", "BB"];

pub use crate::adapters::values::{each, text_at as text};

/// A report's elements of one name, by their `s:id`.
fn by_id<'r>(report: &'r Value, name: &str) -> HashMap<&'r str, &'r Value> {
    each(report.get(name))
        .into_iter()
        .filter_map(|v| Some((text(v, "/@id")?, v)))
        .collect()
}

/// The `s:ref` of each association of `name` whose `from` end points at `id`, read at its `to` end.
fn associated<'r>(report: &'r Value, name: &str, from: &str, id: &str, to: &str) -> Vec<&'r str> {
    each(report.get(name))
        .into_iter()
        .filter(|a| {
            each(a.get(from))
                .iter()
                .any(|f| text(f, "/@ref") == Some(id))
        })
        .flat_map(|a| each(a.get(to)))
        .filter_map(|t| text(t, "/@ref"))
        .collect()
}

/// A victim of a report, ready to become a record's context (without the repeat count).
pub struct VictimFacts {
    /// The victim's `s:id`.
    pub id: String,
    /// The victim sequence number.
    pub sequence: String,
    /// What the mapping sees.
    pub context: Value,
    /// Surname, given name and birth date, when the report names the person.
    pub person_key: Option<[String; 3]>,
    /// Street and city (or postal code) of the offense location, when the report gives one.
    pub address_key: Option<[String; 2]>,
}

/// Every victim of a report.
pub fn victims(report: &Value) -> Vec<VictimFacts> {
    let persons = by_id(report, "Person");
    let offenses = by_id(report, "Offense");
    let locations = by_id(report, "Location");
    let subjects = by_id(report, "Subject");
    each(report.get("Victim"))
        .into_iter()
        .map(|victim| {
            let id = text(victim, "/@id").unwrap_or_default().to_owned();
            let person = text(victim, "/RoleOfPerson/@ref")
                .and_then(|r| persons.get(r).copied())
                .cloned()
                .unwrap_or(Value::Null);
            let linked_offenses: Vec<&Value> =
                associated(report, "OffenseVictimAssociation", "Victim", &id, "Offense")
                    .into_iter()
                    .filter_map(|o| offenses.get(o).copied())
                    .collect();
            let location = linked_offenses
                .iter()
                .filter_map(|o| text(o, "/@id"))
                .flat_map(|o| {
                    associated(
                        report,
                        "OffenseLocationAssociation",
                        "Offense",
                        o,
                        "Location",
                    )
                })
                .find_map(|l| locations.get(l).copied());
            let relationships = relationships(report, &id);
            let offenders: Vec<Value> =
                associated(report, "SubjectVictimAssociation", "Victim", &id, "Subject")
                    .into_iter()
                    .filter_map(|s| subjects.get(s).copied())
                    .cloned()
                    .collect();
            facts(
                victim,
                id,
                person,
                &linked_offenses,
                location,
                relationships,
                offenders,
            )
        })
        .collect()
}

fn relationships(report: &Value, victim: &str) -> Vec<String> {
    each(report.get("SubjectVictimAssociation"))
        .into_iter()
        .filter(|a| {
            each(a.get("Victim"))
                .iter()
                .any(|v| text(v, "/@ref") == Some(victim))
        })
        .filter_map(|a| text(a, "/VictimToSubjectRelationshipCode"))
        .map(str::to_owned)
        .collect()
}

fn facts(
    victim: &Value,
    id: String,
    person: Value,
    offenses: &[&Value],
    location: Option<&Value>,
    relationships: Vec<String>,
    offenders: Vec<Value>,
) -> VictimFacts {
    let age = age(&person);
    let circumstances: Vec<String> = each(victim.get("VictimAggravatedAssaultHomicideFactorCode"))
        .into_iter()
        .filter_map(|c| c.as_str().map(|c| c.trim().to_owned()))
        .collect();
    let factors: Vec<String> = offenses
        .iter()
        .flat_map(|o| each(o.get("OffenseFactor")))
        .filter_map(|f| text(f, "/OffenseFactorCode"))
        .map(str::to_owned)
        .collect();
    let mut triggers = relationships.clone();
    triggers.extend(circumstances.iter().map(|c| format!("circumstance:{c}")));
    triggers.extend(factors.iter().map(|f| format!("factor:{f}")));
    if age.minor {
        triggers.push("child".into());
    }
    let sequence = text(victim, "/VictimSequenceNumberText")
        .unwrap_or_default()
        .to_owned();
    let person_key = person_key(&person);
    let address_key = location.and_then(address_key);
    let context = json!({
        "victim": victim,
        "person": person,
        "sequence": sequence,
        "age": age.years,
        "age_text": age.text,
        "minor": age.minor,
        "offenses": offenses,
        "offense_codes": offenses.iter().filter_map(|o| text(o, "/OffenseUCRCode")).collect::<Vec<_>>(),
        "relationships": relationships,
        "circumstances": circumstances,
        "offenders": offenders,
        "location": location,
        "triggers": triggers,
    });
    VictimFacts {
        id,
        sequence,
        context,
        person_key,
        address_key,
    }
}

struct Age {
    years: Option<u64>,
    text: Option<String>,
    minor: bool,
}

fn age(person: &Value) -> Age {
    let measure = person.get("PersonAgeMeasure");
    let years = measure
        .and_then(|m| text(m, "/MeasureIntegerValue"))
        .and_then(|y| y.parse::<u64>().ok());
    let upper = measure
        .and_then(|m| text(m, "/MeasureIntegerRange/RangeMaximumIntegerValue"))
        .and_then(|y| y.parse::<u64>().ok());
    let label = measure
        .and_then(|m| text(m, "/MeasureValueText"))
        .map(str::to_uppercase);
    let minor = years.or(upper).is_some_and(|y| y < 18)
        || label.as_deref().is_some_and(|l| INFANT_AGES.contains(&l));
    Age {
        years,
        text: label,
        minor,
    }
}

fn person_key(person: &Value) -> Option<[String; 3]> {
    let surname = text(person, "/PersonName/PersonSurName")?;
    let given = text(person, "/PersonName/PersonGivenName")?;
    let born = text(person, "/PersonBirthDate/Date")?;
    Some([surname.into(), given.into(), born.into()])
}

fn address_key(location: &Value) -> Option<[String; 2]> {
    let street = text(location, "/Address/LocationStreet/StreetFullText")
        .or_else(|| text(location, "/Address/AddressFullText"))?;
    let place = text(location, "/Address/LocationCityName")
        .or_else(|| text(location, "/Address/LocationPostalCode"))
        .unwrap_or_default();
    Some([street.into(), place.into()])
}
