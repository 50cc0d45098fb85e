//! What the game keeps in the session, and the moves that change it.

use serde::{Deserialize, Serialize};
use session_core::session;

use crate::game::{score, Code, MAX_GUESSES};

/// One guess and its feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guess {
    /// The guessed code.
    pub guess: Code,
    /// Right colour, right place.
    pub black: u8,
    /// Right colour, wrong place.
    pub white: u8,
}

/// A game in progress, kept in the visitor's session: each field is one session key
/// (`mastermind.v1.secret`, `mastermind.v1.guesses`, `mastermind.v1.max_guesses`), so a
/// guess rewrites only the board, never the secret.
///
/// The secret lives on the server: the cookie carries only an id, so no player can read it
/// from their browser.
#[session(namespace = "mastermind", version = 1)]
#[derive(Debug, Default)]
pub struct MastermindState {
    /// The code to break; `None` before the first game.
    #[session(default)]
    pub secret: Option<Code>,
    /// The guesses so far, oldest first.
    #[session(default)]
    pub guesses: Vec<Guess>,
    /// How many guesses this game allows.
    #[session(default = MAX_GUESSES)]
    pub max_guesses: u8,
}

/// Where a game stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Guesses remain and none was right.
    Playing,
    /// The last guess was right.
    Won,
    /// No guess was right and none remain.
    Lost,
}

/// Why a guess was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuessError {
    /// The game is already won or lost.
    GameOver,
}

impl MastermindState {
    /// Starts a new game with a fresh secret.
    ///
    /// # Errors
    ///
    /// If the system's random source fails.
    pub fn new_game(&mut self) -> Result<Code, ring::error::Unspecified> {
        self.secret = None;
        self.ensure_game()
    }

    /// The current game's secret, starting a game if there is none yet.
    ///
    /// # Errors
    ///
    /// If the system's random source fails.
    pub fn ensure_game(&mut self) -> Result<Code, ring::error::Unspecified> {
        if let Some(secret) = self.secret {
            return Ok(secret);
        }
        let secret = Code::random()?;
        self.secret = Some(secret);
        self.guesses.clear();
        self.max_guesses = MAX_GUESSES;
        Ok(secret)
    }

    /// Where the game stands.
    #[must_use]
    pub fn status(&self) -> Status {
        if self
            .guesses
            .last()
            .is_some_and(|g| usize::from(g.black) == crate::game::PEGS)
        {
            Status::Won
        } else if self.remaining() == 0 {
            Status::Lost
        } else {
            Status::Playing
        }
    }

    /// Guesses left.
    #[must_use]
    pub fn remaining(&self) -> u8 {
        self.max_guesses
            .saturating_sub(u8::try_from(self.guesses.len()).unwrap_or(u8::MAX))
    }

    /// The secret, once the game is over (never while it is played).
    #[must_use]
    pub fn revealed_secret(&self) -> Option<Code> {
        (self.status() != Status::Playing)
            .then_some(self.secret)
            .flatten()
    }

    /// Plays a guess against `secret`.
    ///
    /// # Errors
    ///
    /// [`GuessError::GameOver`] after the game was won or lost.
    pub fn play(&mut self, secret: Code, guess: Code) -> Result<Guess, GuessError> {
        if self.status() != Status::Playing {
            return Err(GuessError::GameOver);
        }
        let feedback = score(&secret, &guess);
        let entry = Guess {
            guess,
            black: feedback.black,
            white: feedback.white,
        };
        self.guesses.push(entry.clone());
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_is_won_or_lost() {
        let mut state = MastermindState::default();
        state.new_game().unwrap();
        let secret: Code = "RGBY".parse().unwrap();
        state.secret = Some(secret);
        assert_eq!(state.remaining(), 10);
        assert_eq!(state.revealed_secret(), None);
        state.play(secret, "RRRR".parse().unwrap()).unwrap();
        assert_eq!(state.status(), Status::Playing);
        state.play(secret, secret).unwrap();
        assert_eq!(state.status(), Status::Won);
        assert_eq!(state.revealed_secret(), Some(secret));
        assert_eq!(state.play(secret, secret), Err(GuessError::GameOver));

        state.new_game().unwrap();
        let secret = state.secret.unwrap();
        let wrong = Code::all().find(|c| *c != secret).unwrap();
        for _ in 0..10 {
            state.play(secret, wrong).unwrap();
        }
        assert_eq!(state.status(), Status::Lost);
        assert_eq!(state.remaining(), 0);
        assert_eq!(state.play(secret, wrong), Err(GuessError::GameOver));
    }
}
