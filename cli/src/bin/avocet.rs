//! `avocet`: the service binary; parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    avocet_cli::service::main(std::env::args_os())
}
