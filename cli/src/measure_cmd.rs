//! `gatehouse measure ...`: a QI initiative's measures over time. A QI
//! lead defines each measure, adds its values (one by one or from a CSV
//! file of `date,value` lines), notes PDSA cycles at dates, and sets the
//! initiative's IHI progress score and stage; `measure show` gives each
//! measure's values with the Making Data Count signals in words. Each
//! change is signed by this node's publishing key and shows in the item's
//! history; the item page draws the SPC and run charts.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use gatehouse_node::query::spc::{self, Better};
use gatehouse_protocol::item::{
    DataPoint, Improvement, Measure, MeasureDefinition, Note, Progress, ProgressScore, QiStage,
};
use gatehouse_protocol::jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;
use crate::output::print_json;

/// Most lines a CSV file of values may have.
const MAX_CSV_LINES: usize = 10_000;

/// `gatehouse measure ...`
#[derive(Subcommand, Debug, Clone, Serialize, Deserialize)]
pub enum MeasureCommand {
    /// Define a measure of a QI initiative (or change its name, definition, unit or direction)
    Define {
        /// The QI initiative (id or a unique prefix)
        id: String,
        /// A short key for the measure, e.g. reviews-on-time
        key: String,
        /// Its name, e.g. "Medication reviews on time"
        #[arg(long)]
        name: String,
        /// How it is counted, e.g. "Reviews done within 7 days of reception, as a share of receptions that month"
        #[arg(long, default_value = "")]
        definition: String,
        /// Its unit, e.g. % or patients
        #[arg(long, default_value = "")]
        unit: String,
        /// Which way is better: higher or lower
        #[arg(long, value_parser = |s: &str| s.parse::<Improvement>())]
        better: Improvement,
        /// The last date of the baseline (before the changes tested): the SPC chart's mean and limits come from the values up to it
        #[arg(long, value_parser = crate::parse_date)]
        baseline_until: Option<Date>,
    },
    /// Add a measure's value for a date (an aggregate: a count, rate or percentage, never a patient's)
    Add {
        /// The QI initiative
        id: String,
        /// The measure's key
        key: String,
        /// The date the value is for (YYYY-MM-DD)
        #[arg(value_parser = crate::parse_date)]
        date: Date,
        /// The value
        #[arg(allow_negative_numbers = true)]
        value: f64,
    },
    /// Add a measure's values from a CSV file of `date,value` lines (a header line is skipped)
    Import {
        /// The QI initiative
        id: String,
        /// The measure's key
        key: String,
        /// The file
        file: PathBuf,
    },
    /// Remove a measure's value at a date
    Remove {
        /// The QI initiative
        id: String,
        /// The measure's key
        key: String,
        /// The date
        #[arg(value_parser = crate::parse_date)]
        date: Date,
    },
    /// Note something on a measure's charts at a date, e.g. "PDSA 2: pharmacist at reception"
    Note {
        /// The QI initiative
        id: String,
        /// The measure's key
        key: String,
        /// The date
        #[arg(value_parser = crate::parse_date)]
        date: Date,
        /// What happened
        text: String,
    },
    /// Set the initiative's IHI progress score (0.5 to 5.0) and stage
    Progress {
        /// The QI initiative
        id: String,
        /// The score, e.g. 3.5
        #[arg(long, value_parser = |s: &str| ProgressScore::parse(s))]
        score: ProgressScore,
        /// planning, testing, implementing, spreading, sustaining or closed
        #[arg(long, value_parser = |s: &str| s.parse::<QiStage>())]
        stage: QiStage,
    },
    /// Each measure's values with the SPC signals in words
    Show {
        /// The QI initiative
        id: String,
    },
}

/// A measure command as sent to the node (a CSV file already read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MeasureOp {
    /// Define.
    Define {
        /// The item.
        id: String,
        /// The definition.
        def: MeasureDefinition,
    },
    /// Add values.
    Add {
        /// The item.
        id: String,
        /// The measure.
        key: String,
        /// The values.
        points: Vec<DataPoint>,
    },
    /// Remove a value.
    Remove {
        /// The item.
        id: String,
        /// The measure.
        key: String,
        /// The date.
        date: Date,
    },
    /// Note at a date.
    Note {
        /// The item.
        id: String,
        /// The measure.
        key: String,
        /// The note.
        note: Note,
    },
    /// Progress.
    Progress {
        /// The item.
        id: String,
        /// Score and stage.
        progress: Progress,
    },
    /// Show.
    Show {
        /// The item.
        id: String,
    },
}

/// What a measure command did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MeasureOutcome {
    /// A change was signed.
    Changed {
        /// What, in words.
        what: String,
    },
    /// The measures, as they stand.
    Shown {
        /// The initiative's title.
        title: String,
        /// Its measures.
        measures: Vec<Measure>,
        /// Its progress.
        progress: Option<Progress>,
    },
}

/// Reads `date,value` lines; a first line that does not parse is taken as
/// a header. Errors name the line.
pub fn read_csv(text: &str) -> anyhow::Result<Vec<DataPoint>> {
    let mut out = Vec::new();
    let mut first = true;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if n >= MAX_CSV_LINES {
            anyhow::bail!("more than {MAX_CSV_LINES} lines");
        }
        let header = std::mem::take(&mut first);
        let mut cells = line.split([',', ';', '\t']).map(str::trim);
        let (date, value) = (cells.next().unwrap_or(""), cells.next().unwrap_or(""));
        let parsed = (
            date.trim_matches('"').parse::<Date>(),
            value.trim_matches('"').parse::<f64>(),
        );
        match parsed {
            (Ok(date), Ok(value)) if value.is_finite() => out.push(DataPoint { date, value }),
            _ if header => continue,
            _ => anyhow::bail!(
                "line {}: {line:?} is not a date (YYYY-MM-DD) and a number",
                n + 1
            ),
        }
    }
    if out.is_empty() {
        anyhow::bail!("no date,value lines");
    }
    Ok(out)
}

/// The op for a command (reading the CSV file on this side).
pub fn op(cmd: MeasureCommand) -> anyhow::Result<MeasureOp> {
    Ok(match cmd {
        MeasureCommand::Define {
            id,
            key,
            name,
            definition,
            unit,
            better,
            baseline_until,
        } => MeasureOp::Define {
            id,
            def: MeasureDefinition {
                key,
                name,
                definition,
                unit,
                improvement: better,
                baseline_until,
            },
        },
        MeasureCommand::Add {
            id,
            key,
            date,
            value,
        } => MeasureOp::Add {
            id,
            key,
            points: vec![DataPoint { date, value }],
        },
        MeasureCommand::Import { id, key, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let points = read_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            MeasureOp::Add { id, key, points }
        }
        MeasureCommand::Remove { id, key, date } => MeasureOp::Remove { id, key, date },
        MeasureCommand::Note {
            id,
            key,
            date,
            text,
        } => MeasureOp::Note {
            id,
            key,
            note: Note { date, text },
        },
        MeasureCommand::Progress { id, score, stage } => MeasureOp::Progress {
            id,
            progress: Progress { score, stage },
        },
        MeasureCommand::Show { id } => MeasureOp::Show { id },
    })
}

/// Carries out a measure op.
pub fn operate(ctx: &mut Ctx<'_>, op: MeasureOp) -> anyhow::Result<MeasureOutcome> {
    let changed = |what: String| Ok(MeasureOutcome::Changed { what });
    match op {
        MeasureOp::Show { id } => {
            let view = ctx.view()?;
            let id = view.resolve(&id)?;
            let item = view.get(&id, None)?.item;
            Ok(MeasureOutcome::Shown {
                title: item.content.title,
                measures: item.measures,
                progress: item.progress,
            })
        }
        MeasureOp::Define { id, def } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            lib.define_measure(&id, &def)?;
            changed(format!("Measure {} ({}) defined", def.key, def.name))
        }
        MeasureOp::Add { id, key, points } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            let n = lib.record_points(&id, &key, &points)?;
            changed(format!(
                "{n} {} of {key} recorded",
                if n == 1 { "value" } else { "values" }
            ))
        }
        MeasureOp::Remove { id, key, date } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            lib.remove_point(&id, &key, date)?;
            changed(format!("The value of {key} for {date} removed"))
        }
        MeasureOp::Note { id, key, note } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            lib.note_measure(&id, &key, &note)?;
            changed(format!("Note on {key} at {} recorded", note.date))
        }
        MeasureOp::Progress { id, progress } => {
            let lib = ctx.lib()?;
            let id = lib.resolve(&id)?;
            lib.set_progress(&id, progress)?;
            changed(format!(
                "Progress: IHI score {} ({}), stage {}",
                progress.score.text(),
                progress.score.meaning(),
                progress.stage.label().to_lowercase()
            ))
        }
    }
}

/// Renders a measure outcome.
pub fn render(outcome: &MeasureOutcome, out: &mut dyn Write, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(out, outcome);
    }
    match outcome {
        MeasureOutcome::Changed { what } => writeln!(out, "{what}")?,
        MeasureOutcome::Shown {
            title,
            measures,
            progress,
        } => {
            writeln!(out, "{title}")?;
            if let Some(p) = progress {
                writeln!(
                    out,
                    "Progress: IHI score {} ({}); stage: {}",
                    p.score.text(),
                    p.score.meaning(),
                    p.stage.label()
                )?;
            }
            if measures.is_empty() {
                writeln!(
                    out,
                    "No measures yet: define one with `gatehouse measure define`."
                )?;
            }
            for m in measures {
                write_measure(out, m)?;
            }
        }
    }
    Ok(())
}

fn write_measure(out: &mut dyn Write, m: &Measure) -> anyhow::Result<()> {
    let d = &m.definition;
    writeln!(out)?;
    writeln!(
        out,
        "{} ({}), {} is better",
        d.name,
        d.key,
        d.improvement.slug()
    )?;
    if !d.definition.is_empty() {
        writeln!(out, "  {}", d.definition)?;
    }
    let values: Vec<f64> = m.points.iter().map(|p| p.value).collect();
    let better = match d.improvement {
        Improvement::Higher => Better::Higher,
        Improvement::Lower => Better::Lower,
    };
    let baseline = d
        .baseline_until
        .map(|until| m.points.iter().filter(|p| p.date <= until).count());
    let analysis = spc::analyse_with_baseline(&values, baseline, better).ok();
    if let Some(a) = &analysis {
        writeln!(
            out,
            "  mean {:.2}, process limits {:.2} to {:.2}{}",
            a.limits.mean,
            a.limits.lower,
            a.limits.upper,
            if a.provisional {
                " (provisional: from fewer than 15 points)"
            } else {
                ""
            }
        )?;
        if let (Some(until), Some(n)) = (d.baseline_until, baseline) {
            writeln!(
                out,
                "  mean and limits from the baseline: the {n} values up to {until}"
            )?;
        }
    }
    for (i, p) in m.points.iter().enumerate() {
        let flag = analysis
            .as_ref()
            .and_then(|a| a.flags.get(i))
            .map(|f| f.in_words())
            .unwrap_or("");
        let note = m
            .notes
            .iter()
            .filter(|n| n.date == p.date)
            .map(|n| format!("  [{}]", n.text))
            .collect::<String>();
        writeln!(out, "  {}  {:>10}  {flag}{note}", p.date, p.value)?;
    }
    if let Some(a) = &analysis {
        for s in &a.signals {
            writeln!(out, "  signal: {}", s.describe())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_read_with_a_header_and_errors_name_the_line() {
        let points = read_csv("date,value\n2026-01-31,42\n2026-02-28, 45.5\n\n").expect("reads");
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].value, 45.5);
        let err = read_csv("date,value\n2026-01-31,42\n2026-02-30,1\n").expect_err("bad date");
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(read_csv("date,value\n").is_err());
        let err = read_csv("2026-01-31,1\n2026-02-28,NaN\n").expect_err("not a number");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
