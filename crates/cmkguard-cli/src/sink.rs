//! The audit's sink: writes what the sweeps found, in output order, and counts it; at the end,
//! the summary and the exit code. It only writes: it neither paces the sweeps nor releases what
//! they opened.

use std::io::{self, Write};

use cmkguard_core::sweep::End;

use crate::exit::{self, Failure, write_failed};
use crate::output::{Format, Printer};
use crate::sweep::Found;
use crate::tally::Tally;

pub struct Sink<W: Write> {
    printer: Printer<W>,
    tally: Tally,
    /// The first write error; nothing more is written after it.
    broken: Option<io::Error>,
    /// Account-regions a transient failure stopped.
    stopped: Vec<String>,
    /// Accounts (or the organization) that could not be listed: the audit is incomplete.
    unlisted: Vec<String>,
}

impl<W: Write> Sink<W> {
    pub fn new(format: Format, out: W) -> Result<Self, Failure> {
        Ok(Sink {
            printer: Printer::new(format, out).map_err(write_failed)?,
            tally: Tally::default(),
            broken: None,
            stopped: Vec::new(),
            unlisted: Vec::new(),
        })
    }

    pub fn write(&mut self, found: Found) {
        match found {
            Found::Record(record) => {
                self.tally.add(&record);
                if self.broken.is_none()
                    && let Err(e) = self.printer.record(&record)
                {
                    self.broken = Some(e);
                }
            }
            Found::Done(done) => {
                let (scope, report) = *done;
                self.tally.place(&scope.account, &scope.region);
                if let End::Transient(message) = &report.end {
                    self.stopped.push(format!(
                        "`{}` in `{}` stopped after {} secrets: {message}",
                        scope.account, scope.region, report.progress.secrets
                    ));
                }
            }
            Found::Unlisted(problem) => self.unlisted.push(problem),
        }
    }

    /// Ends the output (when anything was audited, or nothing failed to be listed) and gives the
    /// exit code; what made the audit incomplete goes to `err`, its last line with the code.
    pub fn finish(self, applied: bool, err: &mut impl Write) -> Result<u8, Failure> {
        let Sink {
            printer,
            tally,
            broken,
            stopped,
            unlisted,
        } = self;
        if let Some(e) = broken {
            return Err(write_failed(e));
        }
        if tally.places > 0 || unlisted.is_empty() {
            printer.finish(&tally, applied).map_err(write_failed)?;
        }
        for line in &stopped {
            let _ = writeln!(err, "cmkguard: {line}");
        }
        if let Some((last, before)) = unlisted.split_last() {
            for line in before {
                let _ = writeln!(err, "cmkguard: {line}");
            }
            return Err((exit::ERROR, last.clone()));
        }
        if !stopped.is_empty() {
            return Err((
                exit::ERROR,
                "a transient AWS failure outlasted the retries; the audit is incomplete (run it again)"
                    .into(),
            ));
        }
        if tally.failures > 0 {
            let _ = writeln!(
                err,
                "cmkguard: {} records are `error` or have a `failed` action",
                tally.failures
            );
            return Ok(exit::ERROR);
        }
        Ok(if tally.flagged() > 0 {
            exit::FINDING
        } else {
            exit::OK
        })
    }
}
