#[session_macros::session]
struct State<T> {
    value: T,
}

fn main() {}
