//! How the command-line client shows things to a person: aligned tables, a few
//! ANSI colours (only on a terminal, and never when `NO_COLOR` is set), local
//! times and short durations. Scripts use `--json` and never see any of this.

use std::io::IsTerminal;

use chrono::{DateTime, Local, TimeDelta, Utc};

use crate::store::{Execution, ExecutionStatus, parse_timestamp};

/// The colours the client uses; each maps to one ANSI SGR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
    Cyan,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Bold => "1",
            Colour::Dim => "2",
            Colour::Red => "31",
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Cyan => "36",
        }
    }
}

/// Paints text when colour is wanted, and leaves it alone otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    enabled: bool,
}

impl Palette {
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    /// Colour for stdout: on when stdout is a terminal and `NO_COLOR` is unset
    /// or empty (<https://no-color.org>).
    pub fn for_stdout() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Self::new(std::io::stdout().is_terminal() && !no_color)
    }

    pub fn paint(&self, text: &str, colour: Colour) -> String {
        if self.enabled {
            format!("\x1b[{}m{text}\x1b[0m", colour.code())
        } else {
            text.to_owned()
        }
    }
}

/// The colour a status is shown in.
pub fn status_colour(status: ExecutionStatus) -> Colour {
    match status {
        ExecutionStatus::Created => Colour::Dim,
        ExecutionStatus::Running => Colour::Cyan,
        ExecutionStatus::Success => Colour::Green,
        ExecutionStatus::Failure => Colour::Red,
        ExecutionStatus::Cancelled => Colour::Yellow,
    }
}

/// One cell of a table: its text and, optionally, its colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    text: String,
    colour: Option<Colour>,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            colour: None,
        }
    }

    pub fn coloured(text: impl Into<String>, colour: Colour) -> Self {
        Self {
            text: text.into(),
            colour: Some(colour),
        }
    }

    pub fn status(status: ExecutionStatus) -> Self {
        Self::coloured(status.as_str(), status_colour(status))
    }
}

/// Rows under a header, columns left-aligned and two spaces apart.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The table as lines of text, each ending in a newline; widths are counted
    /// in characters before any colour is added, so colour never shifts a column.
    pub fn render(&self, palette: Palette) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.text.chars().count());
            }
        }
        let header: Vec<Cell> = self
            .header
            .iter()
            .map(|title| Cell::coloured(*title, Colour::Bold))
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate().take(columns) {
                if index > 0 {
                    line.push_str("  ");
                }
                let text = match cell.colour {
                    Some(colour) => palette.paint(&cell.text, colour),
                    None => cell.text.clone(),
                };
                line.push_str(&text);
                if index + 1 < columns {
                    let pad = widths[index] - cell.text.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A history timestamp in local time, to the second; an unreadable one as it is.
pub fn local_time(timestamp: &str) -> String {
    match parse_timestamp(timestamp) {
        Some(time) => format_local(time),
        None => timestamp.to_owned(),
    }
}

pub fn format_local(time: DateTime<Utc>) -> String {
    time.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A duration as a person reads it: `0.4s`, `12.0s`, `3m 04s`, `2h 05m`, `3d 07h`.
pub fn duration(delta: TimeDelta) -> String {
    let millis = delta.num_milliseconds().max(0);
    let seconds = millis / 1000;
    match seconds {
        0..60 => format!("{}.{}s", seconds, (millis % 1000) / 100),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        3600..86400 => format!("{}h {:02}m", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{}d {:02}h", seconds / 86400, (seconds % 86400) / 3600),
    }
}

/// When the execution first had `status`, if it did.
fn first(execution: &Execution, status: ExecutionStatus) -> Option<DateTime<Utc>> {
    execution
        .status_history
        .iter()
        .find(|change| change.status == status)
        .and_then(|change| parse_timestamp(&change.timestamp))
}

/// When the execution started running.
pub fn started_at(execution: &Execution) -> Option<DateTime<Utc>> {
    first(execution, ExecutionStatus::Running)
}

/// When the execution was queued.
pub fn queued_at(execution: &Execution) -> Option<DateTime<Utc>> {
    first(execution, ExecutionStatus::Created)
}

/// When the execution reached its final status.
pub fn finished_at(execution: &Execution) -> Option<DateTime<Utc>> {
    if !execution.status.is_finished() {
        return None;
    }
    execution
        .status_history
        .iter()
        .rev()
        .find(|change| change.status.is_finished())
        .and_then(|change| parse_timestamp(&change.timestamp))
}

/// How long it ran: start to end, or start to `now` while it still runs.
/// `None` when it never started.
pub fn run_time(execution: &Execution, now: DateTime<Utc>) -> Option<TimeDelta> {
    let start = started_at(execution)?;
    let end = if execution.status.is_finished() {
        finished_at(execution)?
    } else {
        now
    };
    Some(end - start)
}

/// The row a person reads first: the start time, or the queue time of an
/// execution that never started.
pub fn when(execution: &Execution) -> String {
    started_at(execution)
        .or_else(|| queued_at(execution))
        .map(format_local)
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(TimeDelta::milliseconds(420)), "0.4s");
        assert_eq!(duration(TimeDelta::seconds(12)), "12.0s");
        assert_eq!(duration(TimeDelta::seconds(184)), "3m 04s");
        assert_eq!(duration(TimeDelta::seconds(2 * 3600 + 300)), "2h 05m");
        assert_eq!(duration(TimeDelta::seconds(3 * 86400 + 7 * 3600)), "3d 07h");
        assert_eq!(duration(TimeDelta::seconds(-5)), "0.0s");
    }

    #[test]
    fn tables_align_on_plain_width_even_with_colour() {
        let mut table = Table::new(vec!["ID", "STATUS", "EXIT"]);
        table.push(vec![
            Cell::plain("7"),
            Cell::status(ExecutionStatus::Success),
            Cell::plain("0"),
        ]);
        table.push(vec![
            Cell::plain("12"),
            Cell::status(ExecutionStatus::Failure),
            Cell::plain(""),
        ]);
        assert_eq!(
            table.render(Palette::new(false)),
            "ID  STATUS   EXIT\n7   success  0\n12  failure\n"
        );
        let coloured = table.render(Palette::new(true));
        assert!(
            coloured.contains("\x1b[32msuccess\x1b[0m  0"),
            "{coloured:?}"
        );
    }
}
