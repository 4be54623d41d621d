//! The one table of Tencent error codes tagcast returns.

macro_rules! codes {
    ($($name:ident = $num:literal, $text:literal;)*) => {
        /// A Tencent Cloud Chat error code with its number and default `ErrorInfo`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($name,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The number sent as `ErrorCode`.
            pub const fn number(self) -> u32 {
                match self {
                    $(Code::$name => $num,)*
                }
            }

            /// The default text sent as `ErrorInfo` when nothing more specific is known.
            pub const fn text(self) -> &'static str {
                match self {
                    $(Code::$name => $text,)*
                }
            }
        }
    };
}

codes! {
    // Push API (90000-91000).
    JsonParse = 90001, "JSON parse error";
    MsgBodyInvalid = 90002, "MsgBody is not a valid message";
    MsgRandomInvalid = 90005, "MsgRandom is missing or not an integer";
    MsgBodyNotArray = 90007, "MsgBody is not an array";
    AdminRequired = 90009, "the request requires an App admin";
    MsgFormatInvalid = 90010, "JSON is not in message format";
    TooManyAccounts = 90018, "too many accounts in the request";
    TagTooLong = 90020, "tag is longer than 50 bytes";
    TagInAndAndOr = 90022, "the same tag appears in TagsOr and TagsAnd";
    PushTooFrequent = 90024, "pushes are too frequent";
    MsgLifeTimeInvalid = 90026, "invalid offline storage time";
    TooManyTags = 90032, "too many tags";
    InvalidAttribute = 90033, "invalid attribute";
    AccountTypeMismatch = 90035, "tag or attribute is bound to another account type";
    TagsWithAttrs = 90039, "attribute and tag conditions cannot be used together";
    EmptyTag = 90040, "empty tag";
    PushNotEnabled = 90045, "push feature not enabled";
    DailyQuotaExceeded = 90047, "daily push quota exceeded";
    TaskNotFound = 90049, "invalid TaskId or no such push record";
    TaskAlreadyRevoked = 90050, "task already recalled";
    RevokeTooFrequent = 90051, "recall too frequent";
    RevokeWindowExpired = 90052, "recall window expired";
    RevokeNeedsOfflinePushInfo = 90053, "OfflinePushInfo is required to recall this task";
    PushBodyTooLarge = 90056, "push request body is too large";
    DataIdTooLong = 90057, "DataId is longer than 64 bytes";
    Internal = 91000, "internal error, please retry";
    // Common REST errors (60000-60021).
    HttpParse = 60002, "HTTP request parse error";
    RequestJsonParse = 60003, "request JSON parse error";
    InvalidSdkAppId = 60006, "invalid SDKAppID";
    RateLimited = 60007, "REST API call frequency limit exceeded";
    MalformedRequest = 60008, "request timeout or malformed HTTP request";
    ResourceNotFound = 60009, "requested resource error";
    SdkAppIdMissing = 60012, "sdkappid is missing from the URL";
    // Accounts and UserSig (70000-72001).
    UserSigExpired = 70001, "UserSig expired";
    UserSigEmpty = 70002, "UserSig is empty";
    UserSigInvalid = 70003, "UserSig is invalid";
    UserSigVerifyFailed = 70009, "UserSig verification failed";
    IdentifierMismatch = 70013, "identifier in the URL does not match the UserSig";
    SdkAppIdMismatch = 70014, "sdkappid in the URL does not match the UserSig";
    SdkAppIdNotFound = 70020, "SDKAppID not found";
    AccountNotFound = 70107, "account does not exist";
    InvalidParameters = 70402, "invalid parameters";
    AccountAdminRequired = 70403, "the request requires an App admin";
    AccountInternal = 70500, "internal server error";
    ProfileFieldTooLong = 40601, "profile field is longer than 500 bytes";
    // Messages.
    MsgBodyTooLarge = 80002, "message body is larger than 8 KB";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.number(), self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_are_unique() {
        let numbers: HashSet<u32> = Code::ALL.iter().map(|c| c.number()).collect();
        assert_eq!(numbers.len(), Code::ALL.len());
    }
}
