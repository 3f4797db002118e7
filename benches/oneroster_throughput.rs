//! OneRoster users → Patient throughput on a generated export, against the raw limit of this machine.
//!
//! Run: `cargo bench --bench oneroster_throughput` (optional argument: number of students, default 100000).
//! The raw limit reads the same `users.csv` rows with `csv` and writes each as JSON with `serde_json`,
//! no mapping, no joins, no validation. onedoor runs the full pipeline (index, joins, mapping, schema +
//! typed model + profile validation, NDJSON out). Both write to a sink, in the same process and run.
//! Peak memory is the resident high-water mark of each phase (reset between phases via clear_refs).

mod common;

use common::{convert_shipped, measure};
use onedoor::pipeline::OutputFormat;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

fn main() {
    let students: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), students).expect("generate export");
    let size = std::fs::metadata(dir.path().join("users.csv"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "generated export: {students} students, {students} guardians; users.csv {:.1} MB",
        size as f64 / 1e6
    );

    let (rows, raw, raw_peak) = measure(|| raw_limit(&dir.path().join("users.csv")));
    let (summary, mapped, map_peak) =
        measure(|| convert_shipped("oneroster", dir.path(), OutputFormat::Ndjson));
    assert_eq!(
        summary.records_rejected, 0,
        "generated export converts cleanly"
    );

    let patients = students as f64;
    println!(
        "raw limit (csv parse + serde_json write, {rows} user rows): {raw:.2} s, {:.0} rows/s, peak RSS {} MB",
        rows as f64 / raw,
        raw_peak / 1024
    );
    println!(
        "onedoor oneroster → FHIR ({} records, {} resources, validated): {mapped:.2} s, {:.0} students/s ({:.0} resources/s), peak RSS {} MB",
        summary.records_in,
        summary.resources_out,
        patients / mapped,
        summary.resources_out as f64 / mapped,
        map_peak / 1024
    );
    println!(
        "ratio: onedoor takes {:.1}x the raw limit's time per user row",
        (mapped / summary.records_in as f64) / (raw / rows as f64)
    );
}

fn generate(dir: &Path, students: usize) -> std::io::Result<()> {
    let mut users = BufWriter::new(File::create(dir.join("users.csv"))?);
    let mut roles = BufWriter::new(File::create(dir.join("roles.csv"))?);
    let mut demographics = BufWriter::new(File::create(dir.join("demographics.csv"))?);
    writeln!(
        users,
        "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns"
    )?;
    writeln!(
        roles,
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId"
    )?;
    writeln!(
        demographics,
        "sourcedId,status,dateLastModified,birthDate,sex"
    )?;
    std::fs::write(
        dir.join("orgs.csv"),
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\nsch-1,active,2026-08-01,Bench High School,school,0600000001,\n",
    )?;
    let given = [
        "Ava", "Ben", "Chloe", "Dev", "Elena", "Farah", "Gus", "Hana",
    ];
    let family = [
        "Martinez", "Okafor", "Nguyen", "Patel", "Rossi", "Kim", "Silva", "Haddad",
    ];
    for i in 0..students {
        let (g, f) = (given[i % 8], family[(i / 8) % 8]);
        writeln!(
            users,
            "stu-{i},active,2026-08-15,true,s{i},,{g},{f},Lee,S{i:07},s{i}@students.example,,,par-{i},09,,,,,,sch-1,"
        )?;
        writeln!(
            users,
            "par-{i},active,2026-08-15,false,,,Pat,{f},,,p{i}@example.com,555{i:07},,stu-{i},,,,,,,,"
        )?;
        writeln!(
            roles,
            "r-s{i},active,2026-08-15,stu-{i},primary,student,,,sch-1,"
        )?;
        writeln!(
            roles,
            "r-p{i},active,2026-08-15,par-{i},primary,parent,,,sch-1,"
        )?;
        writeln!(
            demographics,
            "stu-{i},active,2026-08-15,2010-0{}-1{},{}",
            1 + i % 9,
            i % 10,
            if i % 2 == 0 { "female" } else { "male" }
        )?;
    }
    users.flush()?;
    roles.flush()?;
    demographics.flush()
}

fn raw_limit(users: &Path) -> usize {
    let mut reader = csv::Reader::from_path(users).expect("users.csv");
    let headers = reader.headers().expect("header").clone();
    let mut out = BufWriter::new(std::io::sink());
    let mut rows = 0;
    for record in reader.records() {
        let record = record.expect("row");
        let map: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        serde_json::to_writer(&mut out, &map).expect("write");
        out.write_all(b"\n").expect("write");
        rows += 1;
    }
    rows
}
