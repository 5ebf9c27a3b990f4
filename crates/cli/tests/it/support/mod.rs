//! What the cli's process tests share: the binary under test, run with a
//! clean environment, and its output as one text.

use std::process::{Command, Output};

/// The `stacking` binary, with none of the benchmark's variables inherited.
pub fn stacking() -> Command {
    stacking_testkit::process::clean_command(env!("CARGO_BIN_EXE_stacking"))
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run the stacking binary")
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    stacking_testkit::process::output_text(o)
}
