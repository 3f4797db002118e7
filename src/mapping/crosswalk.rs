//! `onedoor mappings show NAME`: the mapping rendered as a crosswalk (source field → target element →
//! transformation), in Markdown or HTML, so the documentation is generated from the mapping itself.

use super::catalog::LoadedMapping;
use super::engine::{EngineOptions, MappingEngine};
use crate::record::QuirkLog;

/// One row of the crosswalk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrosswalkRow {
    /// `Patient.name[0].family`
    pub target: String,
    /// `user.familyName`
    pub sources: String,
    /// The expression.
    pub transformation: String,
    /// `required`, `when ...`, the rule's note.
    pub notes: String,
}

/// One section: a resource built from a kind of record.
#[derive(Debug, Clone)]
pub struct CrosswalkSection {
    /// `student → Patient`
    pub heading: String,
    /// What identifies it and when it is built.
    pub summary: String,
    /// Its rows.
    pub rows: Vec<CrosswalkRow>,
}

/// Build the crosswalk sections of a mapping.
pub fn sections(mapping: &LoadedMapping) -> Vec<CrosswalkSection> {
    let engine = MappingEngine::new(
        &mapping.file,
        mapping.codes.clone(),
        &EngineOptions::default(),
        &QuirkLog::default(),
    );
    let fields = |expr: &str| {
        engine
            .fields_of(expr)
            .map(|f| f.into_iter().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    mapping
        .file
        .resources
        .iter()
        .map(|resource| {
            let kind = resource.resource_type.get_ref();
            let mut summary = format!(
                "Built from each `{}` record; id derived from `{}`",
                resource.from.get_ref(),
                resource.id.get_ref()
            );
            if let Some(when) = &resource.when {
                summary.push_str(&format!("; only when `{}`", when.get_ref()));
            }
            if let Some(profile) = &resource.profile {
                summary.push_str(&format!("; claims profile `{profile}`"));
            }
            let rows = resource
                .rules
                .iter()
                .map(|rule| {
                    let mut notes = Vec::new();
                    if rule.required {
                        notes.push("required".to_owned());
                    }
                    if let Some(when) = &rule.when {
                        notes.push(format!("when `{}`", when.get_ref()));
                    }
                    notes.extend(rule.note.clone());
                    CrosswalkRow {
                        target: format!("{kind}.{}", rule.target.get_ref()),
                        sources: fields(rule.value.get_ref()),
                        transformation: rule.value.get_ref().clone(),
                        notes: notes.join("; "),
                    }
                })
                .collect();
            CrosswalkSection {
                heading: format!("{} → {kind}", resource.name),
                summary,
                rows,
            }
        })
        .collect()
}

/// Render as Markdown.
pub fn markdown(mapping: &LoadedMapping) -> String {
    let header = &mapping.file.mapping;
    let mut out = format!("# Crosswalk: {}\n\n", header.name);
    if let Some(title) = &header.title {
        out.push_str(&format!("{title}\n\n"));
    }
    if let Some(description) = &header.description {
        out.push_str(&format!("{}\n\n", description.trim()));
    }
    out.push_str(&format!(
        "- adapter: `{}`\n- source system: `{}`\n- file: `{}`\n",
        header.adapter.get_ref(),
        header.source_system,
        mapping.display_path()
    ));
    if let Some(roster) = &header.roster_mapping {
        out.push_str(&format!(
            "- the referred student's Patient and RelatedPersons come from the mapping `{}`\n",
            roster.get_ref()
        ));
    }
    if header.passthrough {
        out.push_str("- passthrough: FHIR input is validated and passed on unchanged\n");
    }
    for section in sections(mapping) {
        out.push_str(&format!("\n## {}\n\n{}.\n\n| Target element | Source fields | Transformation | Notes |\n|---|---|---|---|\n", section.heading, section.summary));
        for row in section.rows {
            out.push_str(&format!(
                "| `{}` | {} | `{}` | {} |\n",
                cell(&row.target),
                if row.sources.is_empty() {
                    "(constant)".to_owned()
                } else {
                    cell(&row.sources)
                },
                cell(&row.transformation),
                cell(&row.notes)
            ));
        }
    }
    out.push_str(&code_tables_markdown(mapping));
    out
}

fn code_tables_markdown(mapping: &LoadedMapping) -> String {
    let mut out = String::new();
    for (name, table) in &mapping.codes {
        out.push_str(&format!("\n## Code table `{name}`\n\n| Source code | System | Code | Display |\n|---|---|---|---|\n"));
        for source in table.source_codes() {
            if let Some(coding) = table.lookup(source) {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    cell(source),
                    cell(&coding.system),
                    cell(&coding.code),
                    cell(&coding.display)
                ));
            }
        }
    }
    out
}

/// Render as a standalone HTML page.
pub fn html(mapping: &LoadedMapping) -> String {
    let header = &mapping.file.mapping;
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Crosswalk: {0}</title></head><body>\n<h1>Crosswalk: {0}</h1>\n",
        escape(&header.name)
    );
    if let Some(title) = &header.title {
        out.push_str(&format!("<p>{}</p>\n", escape(title)));
    }
    for section in sections(mapping) {
        out.push_str(&format!("<h2>{}</h2>\n<p>{}</p>\n<table border=\"1\">\n<tr><th>Target element</th><th>Source fields</th><th>Transformation</th><th>Notes</th></tr>\n", escape(&section.heading), escape(&section.summary)));
        for row in section.rows {
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                escape(&row.target),
                escape(&row.sources),
                escape(&row.transformation),
                escape(&row.notes)
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
