//! The bytes of the gRPC health protocol (`grpc/health/v1/health.proto`), encoded by hand: a
//! `HealthCheckRequest { string service = 1; }` in a gRPC length-prefixed message, and the
//! `status` field (1) of a `HealthCheckResponse`. Pure.

/// `HealthCheckResponse.ServingStatus.SERVING`.
pub const SERVING: u64 = 1;

/// A gRPC message frame (uncompressed flag, 4-byte big-endian length, bytes) holding a
/// `HealthCheckRequest` for `service`; an empty service encodes as an empty message.
pub fn request_frame(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, wire type 2 (length-delimited)
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    frame(&message)
}

/// Wraps a protobuf message in a gRPC length-prefixed frame.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The message inside the first frame of a response body.
pub fn unframe(body: &[u8]) -> Result<&[u8], String> {
    let [flag, a, b, c, d, rest @ ..] = body else {
        return Err(format!("response message too short ({} bytes)", body.len()));
    };
    if *flag != 0 {
        return Err("compressed response message (no compression was negotiated)".into());
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    rest.get(..len)
        .ok_or_else(|| format!("response message truncated: {} of {len} bytes", rest.len()))
}

/// The `status` field of a `HealthCheckResponse` (0, UNKNOWN, when absent); other fields are
/// skipped.
pub fn response_status(mut message: &[u8]) -> Result<u64, String> {
    let mut status = 0;
    while !message.is_empty() {
        let key = take_varint(&mut message)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = take_varint(&mut message)?;
                if field == 1 {
                    status = value;
                }
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                message = message.get(n..).ok_or("truncated fixed-width field")?;
            }
            2 => {
                let n = take_varint(&mut message)? as usize;
                message = message.get(n..).ok_or("truncated length-delimited field")?;
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        }
    }
    Ok(status)
}

/// The enum's name as Go's generated `String()` prints it.
pub fn status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// The name of a gRPC status code, as in `rpc error: code = Unavailable desc = ...`.
pub fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

/// Decodes the percent-encoding of a `grpc-message` header.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for (i, byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Ok(value);
        }
    }
    Err("malformed protobuf varint".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        assert_eq!(request_frame(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(
            request_frame("etcd"),
            vec![0, 0, 0, 0, 6, 0x0a, 4, b'e', b't', b'c', b'd']
        );
        let long = "s".repeat(200);
        let framed = request_frame(&long);
        assert_eq!(&framed[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn response_decoding() {
        assert_eq!(response_status(&[0x08, 0x01]), Ok(1));
        assert_eq!(response_status(&[]), Ok(0));
        // An unknown string field 2 before the status is skipped.
        assert_eq!(
            response_status(&[0x12, 0x02, b'h', b'i', 0x08, 0x02]),
            Ok(2)
        );
        assert!(response_status(&[0x08]).is_err());
        assert!(response_status(&[0x12, 0x05, b'h']).is_err());
    }

    #[test]
    fn framing() {
        assert_eq!(unframe(&frame(&[0x08, 0x01])), Ok(&[0x08, 0x01][..]));
        assert!(unframe(&[0, 0, 0]).is_err());
        assert!(unframe(&[0, 0, 0, 0, 9, 1]).is_err());
        assert!(unframe(&[1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(status_name(2), "NOT_SERVING");
        assert_eq!(status_name(9), "9");
        assert_eq!(code_name(12), "Unimplemented");
        assert_eq!(code_name(99), "Code(99)");
        assert_eq!(percent_decode("no%20such%zzservice%"), "no such%zzservice%");
    }
}
