//! One error type for the library. Every variant names what failed (a file, an input, a
//! node) and, where we can tell, how to fix it. A failed gate or budget is *not* an error:
//! it is a verdict (exit status 1); errors are usage or input problems (exit status 2).

use std::path::{Path, PathBuf};

use crate::setting::Subject;

/// The library's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file we were asked to read is malformed, unsafe or does not fit.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// An input to the model (a tensor, a shape) is wrong.
    #[error("input '{name}': {message}")]
    Input { name: String, message: String },
    /// A setting's value or a combination of settings is wrong ([`Subject`] says which
    /// setting, typed, or names what else).
    #[error("{what}: {message}")]
    Usage { what: Subject, message: String },
    /// An operating-system I/O error on a named path.
    // The OS error is part of the message and deliberately not a `#[source]`: the CLI prints
    // the error chain on one line, which would repeat it.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A graph is malformed at a named node.
    #[error("node '{node}' ({op_type}): {message}")]
    Node {
        node: String,
        op_type: String,
        message: String,
    },
    /// A tensor's data is malformed or of an unexpected type.
    #[error("tensor '{name}': {message}")]
    Tensor { name: String, message: String },
    /// A labelled graph rewrite could not be applied; the model is unchanged.
    /// (The inner error is part of the message, not a `source()`, so `{:#}` printing
    /// does not repeat it.)
    #[error("patch '{label}': {inner}")]
    Patch { label: String, inner: Box<Error> },
    /// ONNX Runtime could not be found or loaded.
    #[error("ONNX Runtime library: {0}")]
    RuntimeMissing(String),
    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// An external tool (pip) failed.
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed or unsafe file.
    pub fn file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// A wrong model input.
    pub fn input(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input {
            name: name.into(),
            message: message.into(),
        }
    }

    /// A wrong setting (a [`crate::setting::Setting`], or a named subject that is not one).
    pub fn usage(what: impl Into<Subject>, message: impl Into<String>) -> Self {
        Error::Usage {
            what: what.into(),
            message: message.into(),
        }
    }

    /// An I/O error on a path.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error: source,
        }
    }

    /// A malformed node.
    pub fn node(
        node: impl Into<String>,
        op_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Node {
            node: node.into(),
            op_type: op_type.into(),
            message: message.into(),
        }
    }

    /// A malformed tensor (initializer, `Constant` value, `.pb` file content).
    pub fn tensor(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Tensor {
            name: name.into(),
            message: message.into(),
        }
    }

    /// The process exit status for this error: every error is a usage or input error (2).
    pub fn exit_code(&self) -> i32 {
        2
    }
}
