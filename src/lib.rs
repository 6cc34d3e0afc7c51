//! pam_mapi: placeholder.
