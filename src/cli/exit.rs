//! The exit statuses of every command, in one place (the README's table of
//! exit statuses lists the same four).

use std::process::ExitCode;

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (a dry run, a report without problems, every removal made).
    Success,
    /// 1: done, with something the operator must look at: problems of
    /// severity warning or error, a registry that is not whole, removals
    /// that failed.
    Trouble,
    /// 2: the run failed (bad arguments or input, unreadable storage), or
    /// `delete` refused a reference that something kept still needs.
    Error,
    /// 3: `--apply` refused: problems make reachability uncertain.
    Refused,
}

impl Exit {
    /// [`Exit::Trouble`] when `trouble`, else [`Exit::Success`].
    pub fn trouble_if(trouble: bool) -> Exit {
        if trouble {
            Exit::Trouble
        } else {
            Exit::Success
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Success => 0,
            Exit::Trouble => 1,
            Exit::Error => 2,
            Exit::Refused => 3,
        })
    }
}
