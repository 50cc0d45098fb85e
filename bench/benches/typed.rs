//! Typed access (`#[session]` struct load/save through `SessionAccessor`) against
//! `actix_session::Session::get/insert` by hand, on the same in-memory session.
#![allow(missing_docs, clippy::unwrap_used)]

use actix_web::test::TestRequest;
use criterion::{criterion_group, criterion_main, Criterion};
use session_actix::{SessionAccessor, SessionExt};
use session_core::{session, SessionSchema};
use std::hint::black_box;

#[session(namespace = "game")]
#[derive(Debug, Default, Clone)]
struct Game {
    secret: String,
    guesses: Vec<u32>,
    #[session(default)]
    score: u32,
}

fn game() -> Game {
    Game {
        secret: "RGBY".into(),
        guesses: vec![1, 2, 3, 4, 5, 6],
        score: 42,
    }
}

fn typed_vs_manual(c: &mut Criterion) {
    let session = TestRequest::default().to_http_request().get_session();
    let typed = SessionAccessor(session.clone());
    game().save(&typed).unwrap();

    let mut group = c.benchmark_group("load");
    group.bench_function("typed: Game::load", |b| {
        b.iter(|| black_box(Game::load(black_box(&typed)).unwrap()));
    });
    group.bench_function("manual: Session::get x3", |b| {
        b.iter(|| {
            let s = black_box(&session);
            black_box((
                s.get::<String>("game.secret").unwrap(),
                s.get::<Vec<u32>>("game.guesses").unwrap(),
                s.get::<u32>("game.score").unwrap(),
            ))
        });
    });
    group.finish();

    let value = game();
    let mut group = c.benchmark_group("save");
    group.bench_function("typed: Game::save", |b| {
        b.iter(|| black_box(&value).save(black_box(&typed)).unwrap());
    });
    group.bench_function("manual: Session::insert x3", |b| {
        b.iter(|| {
            let (s, v) = (black_box(&session), black_box(&value));
            s.insert("game.secret", &v.secret).unwrap();
            s.insert("game.guesses", &v.guesses).unwrap();
            s.insert("game.score", v.score).unwrap();
        });
    });
    group.finish();
}

criterion_group!(benches, typed_vs_manual);
criterion_main!(benches);
