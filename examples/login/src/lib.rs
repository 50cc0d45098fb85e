//! The login example: who is signed in ([`account`]) and the pages ([`pages`]).
#![forbid(unsafe_code)]

pub mod account;
pub mod pages;
