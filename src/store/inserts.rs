//! Multi-row inserts: one table's rows in `INSERT INTO … VALUES (…), (…)` statements ([`Store::insert_many`]),
//! and the inserts of several tables sent to the database as one statement text
//! ([`Store::insert_together`]).
//!
//! Sending them together matters for a group commit: on SQLite, sqlx hands every statement to its worker
//! thread and waits for the answer (two thread wake-ups, 100–450 µs on the 2-core machine, where SQLite's
//! own work for a small insert is tens of µs), and on PostgreSQL every statement is a network round trip.
//! Together, a batch's audit entries, new resources, superseded versions, messages, outbox rows and
//! message resources are one hand-off: on SQLite the statements one after another in one query (sqlx runs
//! each in turn on its thread), on PostgreSQL one statement whose first inserts are data-modifying `WITH`
//! clauses. Parameters are numbered across the whole text (`?N` / `$N`), so one argument list serves every
//! statement.
//!
//! On SQLite every insert here is `INSERT OR FAIL`. A multi-row insert that may stop halfway (a key taken)
//! otherwise opens a statement journal to undo its own rows: 5% of the writer connection's time under
//! `benches/server_load.sh` (BENCHMARKS.md, issue 13, twenty-third round). With `OR FAIL` a failing row
//! stops the statement and leaves the rows before it in the transaction, and nothing here goes on with a
//! transaction whose write failed: every caller returns the error, and the transaction is rolled back
//! whole (`tests/store.rs`, `a_failed_gathered_write_leaves_nothing_and_the_store_goes_on`). Not `OR
//! ROLLBACK`: SQLite would end the transaction itself, sqlx's own rollback of it would then fail, and sqlx
//! would go on counting a transaction open, beginning the next as a savepoint (sqlx-sqlite 0.8's worker).

use super::audit::{sealed_insert, sealed_rows};
use super::messages::{MessageRows, NewDelivery};
use super::resources::{ResourceRows, ResourceWrite};
use super::{AnyQuery, Backend, Message, Store, StoreError, WriteTx, now_ms};
use crate::consent::audit::AuditEntry;
use std::ops::Range;

/// At most this many rows in one multi-row statement (a few hundred parameters, well inside SQLite's and
/// PostgreSQL's limits).
pub(crate) const ROWS_PER_STATEMENT: usize = 64;

/// At most this many parameters in inserts sent together (SQLite numbers up to 32,766, PostgreSQL
/// 65,535); more, and each insert goes on its own. Counted as PostgreSQL numbers them (a shared value
/// once a statement); SQLite binds a shared value once for each column of each row that takes it, at most
/// two a row in onedoor's tables, which keeps it far inside SQLite's limit too.
const MAX_PARAMETERS_TOGETHER: usize = 8_192;

/// One table's rows to insert: `INSERT INTO {into} VALUES …`, one value group per row.
pub(crate) struct Insert<'r, T> {
    /// `table (column, …)`.
    pub into: &'static str,
    /// The value group's columns in order: `""` for the row's next bound value, anything else written as
    /// it is (`0`, or `$1` for [`Insert::shared`]).
    pub columns: &'static [&'static str],
    /// The rows.
    pub rows: &'r [T],
    /// A value every row carries (a time), named `$1` in `columns`.
    pub shared: Option<i64>,
    /// Binds a row's `""` columns in order.
    pub bind: for<'q> fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
}

/// An [`Insert`] of any row type, as [`Store::insert_together`] takes them.
pub(crate) trait RowsInsert: Send + Sync {
    /// Table and columns.
    fn into(&self) -> &'static str;
    /// As [`Insert::columns`].
    fn columns(&self) -> &'static [&'static str];
    /// How many rows.
    fn len(&self) -> usize;
    /// The shared value, if any.
    fn shared(&self) -> Option<i64>;
    /// Bind the rows in `range`, in order.
    fn bind_rows<'q>(&'q self, query: AnyQuery<'q>, range: Range<usize>) -> AnyQuery<'q>;
    /// Bind the rows in `range`, each followed by the shared value `shared_per_row` times (for value
    /// groups whose shared columns come after the open ones, every parameter an anonymous `?`).
    fn bind_rows_each<'q>(
        &'q self,
        query: AnyQuery<'q>,
        range: Range<usize>,
        shared_per_row: usize,
    ) -> AnyQuery<'q>;
}

impl<T: Sync> RowsInsert for Insert<'_, T> {
    fn into(&self) -> &'static str {
        self.into
    }
    fn columns(&self) -> &'static [&'static str] {
        self.columns
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn shared(&self) -> Option<i64> {
        self.shared
    }
    fn bind_rows<'q>(&'q self, query: AnyQuery<'q>, range: Range<usize>) -> AnyQuery<'q> {
        self.rows
            .get(range)
            .unwrap_or_default()
            .iter()
            .fold(query, self.bind)
    }
    fn bind_rows_each<'q>(
        &'q self,
        query: AnyQuery<'q>,
        range: Range<usize>,
        shared_per_row: usize,
    ) -> AnyQuery<'q> {
        let shared = self.shared.unwrap_or_default();
        let rows = self.rows.get(range).unwrap_or_default();
        rows.iter().fold(query, |query, row| {
            (0..shared_per_row).fold((self.bind)(query, row), |query, _| query.bind(shared))
        })
    }
}

impl Store {
    /// Insert `insert`'s rows inside `tx`, [`ROWS_PER_STATEMENT`] at a time.
    pub(crate) async fn insert_many(
        &self,
        tx: &mut WriteTx<'_>,
        insert: &dyn RowsInsert,
    ) -> Result<(), StoreError> {
        for rows in chunks(insert.len()) {
            let mut numbering = Numbering::default();
            let sql = self.sql(&numbering.statement(self.insert_into(), insert, rows.len()));
            let query = bind_statement(sqlx::query(&sql), insert, rows);
            query.execute(tx.conn()).await?;
        }
        Ok(())
    }

    /// Insert the rows of every one of `inserts` inside `tx`, sent as one statement text (see the module's
    /// documentation; [`ROWS_PER_STATEMENT`] rows a statement), or each on its own when they take more than
    /// [`MAX_PARAMETERS_TOGETHER`] parameters.
    pub(crate) async fn insert_together(
        &self,
        tx: &mut WriteTx<'_>,
        inserts: &[&dyn RowsInsert],
    ) -> Result<(), StoreError> {
        let statements: Vec<(&dyn RowsInsert, Range<usize>)> = (inserts.iter())
            .flat_map(|insert| chunks(insert.len()).map(move |rows| (*insert, rows)))
            .collect();
        let parameters: usize = (statements.iter())
            .map(|(insert, rows)| parameter_count(*insert, rows.len()))
            .sum();
        let sliceable = statements.iter().all(|(insert, _)| shared_trails(*insert));
        if statements.len() < 2 || parameters > MAX_PARAMETERS_TOGETHER || !sliceable {
            for insert in inserts {
                self.insert_many(tx, *insert).await?;
            }
            return Ok(());
        }
        let sql = self.sql(&self.together_text(&statements));
        let query = (statements.iter()).fold(sqlx::query(&sql), |query, (insert, rows)| match self
            .backend
        {
            Backend::Postgres => bind_statement(query, *insert, rows.clone()),
            Backend::Sqlite => insert.bind_rows_each(query, rows.clone(), shared_columns(*insert)),
        });
        query.execute(tx.conn()).await?;
        Ok(())
    }

    /// The text of `statements` (an insert and the rows of it each) together. On PostgreSQL one statement,
    /// numbered as one. On SQLite the statements one after another with anonymous parameters, bound in
    /// order across them (sqlx counts a statement's unnamed parameters on from the previous statement's
    /// but reads a numbered one from the start of the list, which only works in the first statement); a
    /// shared value is bound again for each of its columns. Either way the text depends only on the row
    /// counts, so a batch shaped like an earlier one reuses its prepared statement.
    fn together_text(&self, statements: &[(&dyn RowsInsert, Range<usize>)]) -> String {
        match self.backend {
            Backend::Sqlite => (statements.iter())
                .map(|(insert, rows)| anonymous_statement(*insert, rows.len()))
                .collect::<Vec<_>>()
                .join(";\n"),
            Backend::Postgres => {
                let mut numbering = Numbering::default();
                postgres_together(
                    (statements.iter())
                        .map(|(insert, rows)| numbering.statement(INSERT, *insert, rows.len()))
                        .collect(),
                )
            }
        }
    }
}

/// `INSERT OR FAIL INTO … VALUES …` (SQLite) of `rows` rows of `insert` with a `?` for each open and each
/// shared column.
fn anonymous_statement(insert: &dyn RowsInsert, rows: usize) -> String {
    let group: Vec<&str> = (insert.columns().iter())
        .map(|column| match *column {
            "" | "$1" => "?",
            other => other,
        })
        .collect();
    let group = format!("({})", group.join(", "));
    let values = vec![group; rows].join(", ");
    format!("{SQLITE_INSERT} {} VALUES {values}", insert.into())
}

/// How a statement here begins on PostgreSQL.
const INSERT: &str = "INSERT INTO";
/// How a statement here begins on SQLite (see the module's documentation).
const SQLITE_INSERT: &str = "INSERT OR FAIL INTO";

impl Store {
    /// How an insert statement begins on this store's database.
    fn insert_into(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => SQLITE_INSERT,
            Backend::Postgres => INSERT,
        }
    }
}

/// How many columns of a value group take the shared value.
fn shared_columns(insert: &dyn RowsInsert) -> usize {
    insert.columns().iter().filter(|c| **c == "$1").count()
}

/// Whether every shared column comes after every open one (as [`RowsInsert::bind_rows_each`] binds them).
fn shared_trails(insert: &dyn RowsInsert) -> bool {
    let columns = insert.columns();
    let last_open = columns.iter().rposition(|c| c.is_empty());
    let first_shared = columns.iter().position(|c| *c == "$1");
    match (last_open, first_shared) {
        (Some(open), Some(shared)) => shared > open,
        _ => true,
    }
}

/// The row ranges of an insert's statements, [`ROWS_PER_STATEMENT`] rows each.
fn chunks(rows: usize) -> impl Iterator<Item = Range<usize>> {
    (0..rows)
        .step_by(ROWS_PER_STATEMENT)
        .map(move |start| start..(start + ROWS_PER_STATEMENT).min(rows))
}

impl Store {
    /// What a group commit gathered, written inside `tx`: sealed audit entries, resources (changed rows
    /// updated first, each on its version, the version superseded kept in the history) and messages with
    /// their deliveries, the inserts of all six tables sent together.
    pub async fn write_gathered(
        &self,
        tx: &mut WriteTx<'_>,
        entries: &[AuditEntry],
        resources: &[ResourceWrite],
        messages: &[(&Message, &[NewDelivery])],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.update_changed(tx, resources, now).await?;
        let audit_rows = sealed_rows(entries)?;
        let audit = sealed_insert(&audit_rows);
        let resource_rows = ResourceRows::new(resources, now);
        let message_rows = MessageRows::new(messages, now);
        let [rows, superseded] = resource_rows.inserts();
        let [message, outbox, carried] = message_rows.inserts(messages);
        let inserts: [&dyn RowsInsert; 6] = [
            &audit,
            rows.as_ref(),
            superseded.as_ref(),
            message.as_ref(),
            outbox.as_ref(),
            carried.as_ref(),
        ];
        // Else they would go one by one (correct, slower): a test run notices.
        debug_assert!(inserts.iter().all(|insert| shared_trails(*insert)));
        self.insert_together(tx, &inserts).await
    }
}

/// PostgreSQL runs one statement per query with parameters: every insert but the last becomes a
/// data-modifying `WITH` clause of the last (each is executed whether or not anything reads it).
fn postgres_together(mut statements: Vec<String>) -> String {
    let Some(last) = statements.pop() else {
        return String::new();
    };
    if statements.is_empty() {
        return last;
    }
    let clauses: Vec<String> = (statements.iter().enumerate())
        .map(|(i, statement)| format!("together_{i} AS ({statement})"))
        .collect();
    format!("WITH {} {last}", clauses.join(", "))
}

/// Bind one statement's values in the order [`Numbering::statement`] numbered them.
fn bind_statement<'q>(
    query: AnyQuery<'q>,
    insert: &'q dyn RowsInsert,
    rows: Range<usize>,
) -> AnyQuery<'q> {
    let query = match insert.shared() {
        Some(value) => query.bind(value),
        None => query,
    };
    insert.bind_rows(query, rows)
}

/// How many parameters a statement of `rows` rows of `insert` takes.
fn parameter_count(insert: &dyn RowsInsert, rows: usize) -> usize {
    let open = insert.columns().iter().filter(|c| c.is_empty()).count();
    usize::from(insert.shared().is_some()) + open * rows
}

/// Parameter numbers handed out across statements sent together.
#[derive(Default)]
struct Numbering {
    used: usize,
}

impl Numbering {
    /// `{verb} … VALUES …` of `rows` rows of `insert`: its shared value (if any) takes the next number, then
    /// each row's open columns theirs.
    fn statement(&mut self, verb: &str, insert: &dyn RowsInsert, rows: usize) -> String {
        let shared = insert.shared().map(|_| {
            self.used += 1;
            format!("${}", self.used)
        });
        let columns: Vec<&str> = (insert.columns().iter())
            .map(|column| match (&shared, *column) {
                (Some(shared), "$1") => shared.as_str(),
                _ => column,
            })
            .collect();
        let values = numbered_rows(rows, &columns, self.used + 1);
        self.used += rows * columns.iter().filter(|c| c.is_empty()).count();
        format!("{verb} {} VALUES {values}", insert.into())
    }
}

/// `rows` value groups for a multi-row insert: each column of `columns` that is empty gets the next
/// numbered parameter, from `$first`; other columns are written as they are.
/// `numbered_rows(2, &["", "$1"], 2)` is `($2, $1), ($3, $1)`.
fn numbered_rows(rows: usize, columns: &[&str], first: usize) -> String {
    let per_row = columns.iter().filter(|c| c.is_empty()).count();
    (0..rows)
        .map(|row| {
            let mut next = first + row * per_row;
            let values: Vec<String> = columns
                .iter()
                .map(|column| {
                    if column.is_empty() {
                        next += 1;
                        format!("${}", next - 1)
                    } else {
                        (*column).to_owned()
                    }
                })
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_columns_are_numbered_in_order_after_the_shared_ones() {
        assert_eq!(numbered_rows(2, &["", "$1"], 2), "($2, $1), ($3, $1)");
        assert_eq!(
            numbered_rows(2, &["", "0", ""], 1),
            "($1, 0, $2), ($3, 0, $4)"
        );
    }

    fn bind_pair<'q>(query: AnyQuery<'q>, row: &'q (i64, i64)) -> AnyQuery<'q> {
        query.bind(row.0).bind(row.1)
    }

    #[test]
    fn statements_together_number_their_parameters_as_one() {
        let first = [(1, 2), (3, 4)];
        let second = [(5, 6)];
        let a = Insert {
            into: "a (x, y, at)",
            columns: &["", "", "$1"],
            rows: &first,
            shared: Some(9),
            bind: bind_pair,
        };
        let b = Insert {
            into: "b (x, n, y)",
            columns: &["", "0", ""],
            rows: &second,
            shared: None,
            bind: bind_pair,
        };
        let mut numbering = Numbering::default();
        assert_eq!(
            numbering.statement(INSERT, &a, 2),
            "INSERT INTO a (x, y, at) VALUES ($2, $3, $1), ($4, $5, $1)"
        );
        assert_eq!(
            numbering.statement(INSERT, &b, 1),
            "INSERT INTO b (x, n, y) VALUES ($6, 0, $7)"
        );
        assert_eq!(parameter_count(&a, 2) + parameter_count(&b, 1), 7);
        assert_eq!(chunks(130).collect::<Vec<_>>(), [0..64, 64..128, 128..130]);
        assert_eq!(chunks(0).count(), 0);
        assert_eq!(
            postgres_together(vec![
                "INSERT 1".into(),
                "INSERT 2".into(),
                "INSERT 3".into()
            ]),
            "WITH together_0 AS (INSERT 1), together_1 AS (INSERT 2) INSERT 3"
        );
        assert_eq!(postgres_together(vec!["INSERT 1".into()]), "INSERT 1");
        assert_eq!(
            anonymous_statement(&a, 2),
            "INSERT OR FAIL INTO a (x, y, at) VALUES (?, ?, ?), (?, ?, ?)"
        );
        assert!(shared_trails(&a) && shared_trails(&b));
        let leading = Insert {
            columns: &["$1", "", ""],
            ..a
        };
        assert!(!shared_trails(&leading));
        assert_eq!(
            anonymous_statement(&b, 1),
            "INSERT OR FAIL INTO b (x, n, y) VALUES (?, 0, ?)"
        );
    }
}
