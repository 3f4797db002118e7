//! Ed-Fi `Student.xml` → Patient throughput and memory on generated interchange files of two sizes, against the
//! raw limit of this machine.
//!
//! Run: `cargo bench --bench edfi_xml_stream` (optional argument: number of students of the large file, default
//! 200000; the small file has a fifth of it). The raw limit reads the same file with quick-xml, building nothing
//! (every event read and dropped). onedoor runs the full pipeline (streamed XML → JSON, mapping, schema + typed
//! model validation, one Bundle per student to a sink). Peak memory is the resident high-water mark of each
//! phase (reset between phases via clear_refs): with streaming it must not grow with the file.

mod common;

use common::{convert_shipped, measure};
use onedoor::pipeline::OutputFormat;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

fn main() {
    let large: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    for students in [large / 5, large] {
        run(students);
    }
}

fn run(students: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("Student.xml");
    generate(&file, students).expect("generate Student.xml");
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "generated Student.xml: {students} students, {:.1} MB",
        size as f64 / 1e6
    );

    let (events, raw, raw_peak) = measure(|| raw_limit(&file));
    let (summary, mapped, map_peak) =
        measure(|| convert_shipped("edfi-5", dir.path(), OutputFormat::Bundle));
    assert_eq!(
        summary.records_rejected, 0,
        "generated file converts cleanly"
    );
    assert_eq!(summary.records_converted as usize, students);

    println!(
        "  raw limit (quick-xml, {events} events, nothing built): {raw:.2} s, {:.1} MB/s, peak RSS {} MB",
        size as f64 / 1e6 / raw,
        raw_peak / 1024
    );
    println!(
        "  onedoor edfi-5 ({} students → {} Patients, validated): {mapped:.2} s, {:.0} students/s, {:.1} MB/s, peak RSS {} MB",
        summary.records_in,
        summary.resources_out,
        students as f64 / mapped,
        size as f64 / 1e6 / mapped,
        map_peak / 1024
    );
    println!(
        "  ratio: onedoor takes {:.1}x the raw limit's time",
        mapped / raw
    );
}

fn generate(path: &Path, students: usize) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(out, "<InterchangeStudent xmlns=\"http://ed-fi.org/5.2.0\">")?;
    let given = ["Tyrone", "Lisa", "Julie", "Omar", "Mei", "Ana"];
    let family = ["Dyer", "Woods", "Randolph", "Haddad", "Chen", "Silva"];
    for i in 0..students {
        let (g, f) = (given[i % 6], family[(i / 6) % 6]);
        writeln!(
            out,
            "\t<Student>\n\t\t<StudentUniqueId>{}</StudentUniqueId>\n\t\t<Name>\n\t\t\t<PersonalTitlePrefix>Mx</PersonalTitlePrefix>\n\t\t\t<FirstName>{g}</FirstName>\n\t\t\t<MiddleName>Lee</MiddleName>\n\t\t\t<LastSurname>{f}</LastSurname>\n\t\t\t<PreferredFirstName>{g}</PreferredFirstName>\n\t\t</Name>\n\t\t<BirthData>\n\t\t\t<BirthDate>2012-0{}-1{}</BirthDate>\n\t\t</BirthData>\n\t</Student>",
            600_000 + i,
            1 + i % 9,
            i % 10
        )?;
    }
    writeln!(out, "</InterchangeStudent>")?;
    out.flush()
}

fn raw_limit(path: &Path) -> usize {
    let mut reader =
        quick_xml::Reader::from_reader(BufReader::new(File::open(path).expect("file")));
    let mut buf = Vec::new();
    let mut events = 0;
    loop {
        buf.clear();
        match reader.read_event_into(&mut buf).expect("well formed") {
            quick_xml::events::Event::Eof => return events,
            _ => events += 1,
        }
    }
}
