//! What log cleaning (`logparse`) found in one log record.

/// What the log cleaner found in one record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedLog {
    /// 16 hex digits, the same for the same template in every process.
    pub template_id: Option<String>,
    /// The message with `<*>` for each parameter.
    pub template: Option<String>,
    /// The parameters' values, in order.
    pub params: Vec<String>,
    /// Fields of a JSON or logfmt body (dotted keys for nested objects), or of a plain
    /// body's header (`log.time`, `log.level`, ...).
    pub fields: Vec<(String, String)>,
    /// `shape_mismatch`, `dtype_mismatch`, `cuda_oom`, `nccl` or `browser_error`.
    pub signature: Option<&'static str>,
    /// The signature's typed fields (see `logparse::signatures`).
    pub signature_fields: Vec<(&'static str, String)>,
}
