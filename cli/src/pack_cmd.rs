//! `gatehouse pack --establishment X --out DIR` (an inspection pack of
//! every item the establishment has in force, built on this node) and
//! `gatehouse pack verify DIR` (checked with no node and no network).

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use gatehouse_node::pack::{self, PackReport};
use gatehouse_node::query::reading::StaffMember;
use gatehouse_node::staff::{AccountState, Staff};
use gatehouse_protocol::jiff::civil::Date;

use crate::ctx::Ctx;
use crate::output::print_json;

/// `gatehouse pack verify`
#[derive(Subcommand, Debug, Clone)]
pub enum PackCommand {
    /// Check a pack on any machine, with no node and no network: every signature, every file unchanged (the one that is not is named), every page built from the envelopes
    Verify {
        /// The pack's directory
        dir: PathBuf,
    },
}

/// Builds the pack of the establishment named by `establishment` (this
/// node's own when `None`) into `out`, as of `today`.
pub fn build(
    ctx: &mut Ctx<'_>,
    establishment: Option<&str>,
    out: &std::path::Path,
    today: Date,
) -> anyhow::Result<PackReport> {
    let home = ctx.home.clone();
    let lib = ctx.lib()?;
    let view = lib.read_view();
    let est = match establishment {
        None => lib.config().establishment,
        Some(text) => match view.find_establishments(text).as_slice() {
            [one] => *one,
            [] => anyhow::bail!("no establishment in this network is called {text:?}"),
            many => anyhow::bail!(
                "{text:?} names {} establishments ({}); give more of the name or its id",
                many.len(),
                many.iter()
                    .map(|e| view.establishment_name(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    // Only this node knows its own staff.
    let staff: Vec<StaffMember> = if est == lib.config().establishment {
        Staff::of(&home)
            .list()?
            .into_iter()
            .filter(|a| a.state != AccountState::Removed)
            .map(|a| StaffMember {
                name: a.name,
                key: a.key,
                job: a.job,
            })
            .collect()
    } else {
        Vec::new()
    };
    let signer = lib.signing_key()?;
    Ok(pack::build(lib, est, &staff, today, &signer, out)?)
}

/// Renders what making or checking a pack found.
pub fn render(
    report: &PackReport,
    verified: bool,
    out: &mut dyn Write,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_json(out, report);
    }
    if verified {
        writeln!(
            out,
            "The pack in {} verifies: {} items of {} in force on {}, {} envelopes, {} files, signed by {}.",
            report.dir.display(),
            report.items,
            report.establishment,
            report.generated_on,
            report.envelopes,
            report.files,
            report.signed_by
        )?;
        writeln!(
            out,
            "Every signature holds, no file was changed, and every page is what the envelopes give."
        )?;
    } else {
        writeln!(
            out,
            "Wrote the inspection pack of {} to {}: {} items in force on {}, {} envelopes, signed by {}.",
            report.establishment,
            report.dir.display(),
            report.items,
            report.generated_on,
            report.envelopes,
            report.signed_by
        )?;
        writeln!(
            out,
            "Open {}/index.html in a browser; `gatehouse pack verify {}` checks it on any machine.",
            report.dir.display(),
            report.dir.display()
        )?;
    }
    Ok(())
}
