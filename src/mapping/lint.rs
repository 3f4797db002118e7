//! `onedoor mappings check`: lint every mapping and report every problem as `file:line: message`:
//! TOML that does not parse or has unknown keys, unknown adapters and record kinds, expressions that do not
//! compile, fields the adapter does not provide, code tables that do not exist or are malformed, target
//! paths that are not elements of the resource, roster mappings that do not exist, duplicate names.

use super::catalog::{self, LoadedMapping};
use super::engine::{EngineOptions, MappingEngine, MappingProblem};
use super::model::line_of;
use crate::record::{QuirkLog, SourceDescription};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// Lint every mapping under `dir` against the `sources` this build knows; returns the number of mappings
/// checked and every problem found.
pub fn check_all(dir: &Path, sources: &[&SourceDescription]) -> (usize, Vec<MappingProblem>) {
    let files = catalog::mapping_files(dir);
    let mut problems = Vec::new();
    let mut loaded = Vec::new();
    for path in &files {
        match catalog::load(path) {
            Ok(mapping) => loaded.push(mapping),
            Err(problem) => problems.push(problem),
        }
    }
    let names: BTreeMap<&str, &LoadedMapping> = loaded.iter().map(|m| (m.name(), m)).collect();
    let mut seen: BTreeMap<&str, &LoadedMapping> = BTreeMap::new();
    for mapping in &loaded {
        if let Some(first) = seen.insert(mapping.name(), mapping) {
            problems.push(at(
                mapping,
                1,
                format!(
                    "mapping name '{}' is also used by {}",
                    mapping.name(),
                    first.display_path()
                ),
            ));
        }
        problems.extend(check(mapping, &names, sources));
    }
    if files.is_empty() {
        problems.push(MappingProblem {
            file: dir.display().to_string(),
            line: 1,
            message: "no mapping files found (expected <dir>/<adapter>/<mapping>.toml)".into(),
        });
    }
    (files.len(), problems)
}

/// Lint one loaded mapping.
pub fn check(
    mapping: &LoadedMapping,
    others: &BTreeMap<&str, &LoadedMapping>,
    sources: &[&SourceDescription],
) -> Vec<MappingProblem> {
    let mut problems: Vec<MappingProblem> = mapping
        .code_errors
        .iter()
        .map(|e| MappingProblem {
            file: e.file.clone(),
            line: e.line.unwrap_or(1) as usize,
            message: e.message.clone(),
        })
        .collect();
    let header = &mapping.file.mapping;
    let adapter = header.adapter.get_ref().as_str();
    let Some(source) = SourceDescription::find(sources, adapter) else {
        problems.push(spanned(
            mapping,
            &header.adapter,
            format!(
                "unknown adapter '{adapter}' (expected one of: {})",
                SourceDescription::names(sources)
            ),
        ));
        return problems;
    };
    let folder = mapping
        .path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if folder != adapter {
        problems.push(spanned(
            mapping,
            &header.adapter,
            format!("a '{adapter}' mapping belongs in mappings/{adapter}/ (found in {folder}/)"),
        ));
    }
    if let Some(roster) = &header.roster_mapping
        && !others.contains_key(roster.get_ref().as_str())
    {
        problems.push(spanned(
            mapping,
            roster,
            format!("roster_mapping '{}' does not exist", roster.get_ref()),
        ));
    }
    if header.passthrough && !mapping.file.resources.is_empty() {
        problems.push(at(
            mapping,
            1,
            "a passthrough mapping builds no resources; remove [[resources]] or passthrough".into(),
        ));
    }
    if !header.passthrough && mapping.file.resources.is_empty() {
        problems.push(at(
            mapping,
            1,
            "the mapping builds no resources (expected [[resources]] tables)".into(),
        ));
    }
    let engine = MappingEngine::new(
        &mapping.file,
        mapping.codes.clone(),
        &EngineOptions::default(),
        &QuirkLog::default(),
    );
    if let Err(mut compile) = engine.compile(&mapping.file, &mapping.text, &mapping.display_path())
    {
        problems.append(&mut compile);
    }
    check_fields(mapping, source, &engine, &mut problems);
    problems
}

fn check_fields(
    mapping: &LoadedMapping,
    source: &SourceDescription,
    engine: &MappingEngine,
    problems: &mut Vec<MappingProblem>,
) {
    let (adapter, kinds) = (source.name, source.record_kinds);
    for resource in &mapping.file.resources {
        if !kinds.contains(&resource.from.get_ref().as_str()) {
            problems.push(spanned(
                mapping,
                &resource.from,
                format!(
                    "'{adapter}' yields no '{}' records (expected one of: {})",
                    resource.from.get_ref(),
                    kinds.join(", ")
                ),
            ));
        }
        let expressions = std::iter::once(&resource.id)
            .chain(resource.when.iter())
            .chain(
                resource
                    .rules
                    .iter()
                    .flat_map(|r| std::iter::once(&r.value).chain(r.when.iter())),
            );
        for expression in expressions {
            check_expression(mapping, source, engine, expression, problems);
        }
    }
}

fn check_expression(
    mapping: &LoadedMapping,
    source: &SourceDescription,
    engine: &MappingEngine,
    expression: &Spanned<String>,
    problems: &mut Vec<MappingProblem>,
) {
    let (adapter, context) = (source.name, source.context);
    if let Ok(fields) = engine.fields_of(expression.get_ref()) {
        for field in fields {
            let mut parts = field.split('.');
            let root = parts.next().unwrap_or_default();
            let attribute = parts.next();
            match context.iter().find(|c| c.variable == root) {
                None => problems.push(spanned(
                    mapping,
                    expression,
                    format!(
                        "unknown field '{root}' (a '{adapter}' record has: {})",
                        context
                            .iter()
                            .map(|c| c.variable)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
                Some(table) => {
                    if let Some(attribute) = attribute.filter(|_| !table.columns.is_empty())
                        && !table.columns.contains(&attribute)
                    {
                        problems.push(spanned(mapping, expression, format!("unknown field '{root}.{attribute}': {} has no column '{attribute}'", table.table)));
                    }
                }
            }
        }
    }
    for table in code_tables_named(expression.get_ref()) {
        if !mapping.codes.contains_key(&table) {
            problems.push(spanned(
                mapping,
                expression,
                format!(
                    "unknown code table '{table}' (expected codes/{table}.csv beside the mapping)"
                ),
            ));
        }
    }
}

/// The table names of `code('name')` and `lookup('name')` calls in an expression.
pub fn code_tables_named(expression: &str) -> Vec<String> {
    let mut names = tables_after(expression, "code(");
    names.extend(tables_after(expression, "lookup("));
    names
}

fn tables_after(expression: &str, call: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(at) = rest.find(call) {
        rest = &rest[at + call.len()..];
        let trimmed = rest.trim_start();
        let Some(quote) = trimmed.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        if let Some(end) = trimmed[1..].find(quote) {
            names.push(trimmed[1..1 + end].to_owned());
        }
    }
    names
}

fn spanned(mapping: &LoadedMapping, item: &Spanned<String>, message: String) -> MappingProblem {
    at(mapping, line_of(&mapping.text, item.span().start), message)
}

fn at(mapping: &LoadedMapping, line: usize, message: String) -> MappingProblem {
    MappingProblem {
        file: mapping.display_path(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_code_table_names() {
        assert_eq!(
            code_tables_named("demographics.sex | code('sex')"),
            vec!["sex"]
        );
        assert_eq!(
            code_tables_named("a | code(\"need\") ~ b | code( 'x' )"),
            vec!["need", "x"]
        );
    }
}
