//! `pjp-sim`: runs simulated scenarios from the command line. Run it through
//! `cargo xtask sim [ARGS…]`, which builds it with `--cfg madsim`.

#![forbid(unsafe_code)]

#[cfg(madsim)]
mod cli;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "pjp-sim runs simulations, which need a `--cfg madsim` build: use `cargo xtask sim [ARGS…]`"
    );
    std::process::ExitCode::from(2)
}
