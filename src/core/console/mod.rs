//! The operator console (API.md §4a): server-rendered pages for what the admin API does,
//! signed in by pasting `ADMIN_TOKEN` once. Its session and CSRF rules, its forms and its pages
//! are decided here; the glue module `console` moves the bytes.

pub mod forms;
pub mod pages;
pub mod session;
