//! `avocetctl`: parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    avocet_cli::ctl::main(std::env::args_os())
}
