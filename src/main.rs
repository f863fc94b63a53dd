fn main() -> std::process::ExitCode {
    stockbatch::cli::run()
}
