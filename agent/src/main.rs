//! `vigil`: see `vigil --help`. Everything lives in the library; this only reports the error.

fn main() -> std::process::ExitCode {
    match vigil::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
