fn main() {
    boot::cli::main()
}
