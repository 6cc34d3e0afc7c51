//! Placeholder: the stand-in server is being written.
