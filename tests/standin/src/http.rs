//! HTTP/1.1 request reading (Content-Length or chunked bodies, `Expect: 100-continue`, a
//! bare XML envelope without headers) and response serialisation.

use std::io::{self, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::net::Stream;

/// Largest request head (request line plus headers) accepted, in bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;

pub(crate) struct Request {
    pub method: String,
    pub target: String,
    pub http10: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The request was an XML envelope without any HTTP head (Unix socket only).
    pub bare: bool,
}

impl Request {
    /// First header with this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns whether the client asked to close the connection after this request.
    pub(crate) fn wants_close(&self) -> bool {
        let connection = self.header("Connection").unwrap_or("").to_ascii_lowercase();
        if self.bare || connection.contains("close") {
            return true;
        }
        self.http10 && !connection.contains("keep-alive")
    }
}

pub(crate) enum ReadOutcome {
    Request(Request),
    /// The peer closed the connection, or it was idle for too long.
    Closed,
    /// The request was too large or not HTTP at all.
    Invalid(&'static str),
}

/// An accepted connection with its read buffer.
pub(crate) struct Connection {
    stream: Option<Stream>,
    buffer: Vec<u8>,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Self {
        Connection { stream: Some(stream), buffer: Vec::new() }
    }

    pub(crate) fn stream(&mut self) -> io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection already closed"))
    }

    /// Takes the stream out, for faults that end the connection in a special way.
    pub(crate) fn take_stream(&mut self) -> Option<Stream> {
        self.stream.take()
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream()?;
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Reads more bytes into the buffer; returns false on EOF, timeout or error.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let Ok(stream) = self.stream() else { return false };
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one request. `allow_bare` accepts an XML envelope without an HTTP head.
    pub(crate) fn read_request(&mut self, allow_bare: bool, max_body: usize) -> ReadOutcome {
        while self.buffer.iter().all(|b| b.is_ascii_whitespace()) {
            self.buffer.clear();
            if !self.fill() {
                return ReadOutcome::Closed;
            }
        }
        let start = self.buffer.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
        self.buffer.drain(..start);
        if self.buffer[0] == b'<' {
            if !allow_bare {
                return ReadOutcome::Invalid("request without HTTP head");
            }
            return self.read_bare_xml(max_body);
        }

        let head_end = loop {
            if let Some(end) = find_head_end(&self.buffer) {
                break end;
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return ReadOutcome::Invalid("request head too large");
            }
            if !self.fill() {
                return ReadOutcome::Closed;
            }
        };
        let head: Vec<u8> = self.buffer.drain(..head_end.1).collect();
        let head = String::from_utf8_lossy(&head[..head_end.0]).into_owned();
        let mut lines = head.split('\n').map(|line| line.trim_end_matches('\r'));
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split_whitespace();
        let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
        else {
            return ReadOutcome::Invalid("malformed request line");
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        let mut request = Request {
            method: method.to_string(),
            target: target.to_string(),
            http10: version == "HTTP/1.0",
            headers,
            body: Vec::new(),
            bare: false,
        };

        if request
            .header("Expect")
            .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
            && self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return ReadOutcome::Closed;
        }
        let chunked = request
            .header("Transfer-Encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            self.read_chunked_body(max_body)
        } else {
            let length = match request.header("Content-Length").map(|v| v.parse::<usize>()) {
                None => 0,
                Some(Ok(length)) => length,
                Some(Err(_)) => return ReadOutcome::Invalid("invalid Content-Length"),
            };
            if length > max_body {
                return ReadOutcome::Invalid("request body too large");
            }
            self.read_exact_body(length)
        };
        match body {
            Ok(body) => {
                request.body = body;
                ReadOutcome::Request(request)
            }
            Err(outcome) => outcome,
        }
    }

    fn read_exact_body(&mut self, length: usize) -> Result<Vec<u8>, ReadOutcome> {
        while self.buffer.len() < length {
            if !self.fill() {
                return Err(ReadOutcome::Closed);
            }
        }
        Ok(self.buffer.drain(..length).collect())
    }

    fn read_line(&mut self) -> Result<String, ReadOutcome> {
        loop {
            if let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=newline).collect();
                return Ok(String::from_utf8_lossy(&line).trim().to_string());
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(ReadOutcome::Invalid("chunk line too long"));
            }
            if !self.fill() {
                return Err(ReadOutcome::Closed);
            }
        }
    }

    fn read_chunked_body(&mut self, max_body: usize) -> Result<Vec<u8>, ReadOutcome> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ReadOutcome::Invalid("invalid chunk size"))?;
            if size == 0 {
                // Trailer fields end with an empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > max_body {
                return Err(ReadOutcome::Invalid("request body too large"));
            }
            let chunk = self.read_exact_body(size)?;
            body.extend_from_slice(&chunk);
            self.read_line()?;
        }
    }

    /// Reads an XML envelope sent without HTTP head, up to the end tag of its root element
    /// or the end of input, as gSOAP does on Kopano's Unix socket.
    fn read_bare_xml(&mut self, max_body: usize) -> ReadOutcome {
        loop {
            if let Some(end) = find_root_end(&self.buffer) {
                let body: Vec<u8> = self.buffer.drain(..end).collect();
                return ReadOutcome::Request(bare_request(body));
            }
            if self.buffer.len() > max_body {
                return ReadOutcome::Invalid("request body too large");
            }
            if !self.fill() {
                let body = std::mem::take(&mut self.buffer);
                return ReadOutcome::Request(bare_request(body));
            }
        }
    }
}

fn bare_request(body: Vec<u8>) -> Request {
    Request {
        method: "POST".to_string(),
        target: String::new(),
        http10: false,
        headers: Vec::new(),
        body,
        bare: true,
    }
}

/// Returns (end of the head text, start of the body) if the buffer contains a full head.
fn find_head_end(buffer: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buffer.len() {
        if buffer[i..].starts_with(b"\r\n\r\n") {
            return Some((i, i + 4));
        }
        if buffer[i..].starts_with(b"\n\n") {
            return Some((i, i + 2));
        }
    }
    None
}

/// Returns the offset just past the end tag of the root element, if it is in the buffer.
fn find_root_end(buffer: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(buffer);
    let mut rest = text.as_ref();
    let mut offset = 0;
    // Skip the XML declaration, comments and processing instructions before the root.
    loop {
        let trimmed = rest.trim_start();
        offset += rest.len() - trimmed.len();
        rest = trimmed;
        if rest.starts_with("<?") || rest.starts_with("<!") {
            let close = rest.find('>')?;
            offset += close + 1;
            rest = &rest[close + 1..];
        } else {
            break;
        }
    }
    let name: String = rest
        .strip_prefix('<')?
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect();
    if name.is_empty() {
        return None;
    }
    let end_tag = format!("</{name}");
    let mut search = 0;
    while let Some(found) = rest[search..].find(&end_tag) {
        let after = search + found + end_tag.len();
        let tail = rest[after..].trim_start();
        if tail.starts_with('>') {
            let close = after + (rest[after..].len() - tail.len()) + 1;
            return Some(offset + close);
        }
        search = after;
    }
    None
}

pub(crate) struct Response {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after sending.
    pub close: bool,
}

impl Response {
    /// Status line and headers, ending with the empty line.
    pub(crate) fn head_bytes(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.head_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sets a header's value in place, or appends the header.
    pub(crate) fn set_header(&mut self, name: &str, value: String) {
        match self.headers.iter_mut().find(|(key, _)| key.eq_ignore_ascii_case(name)) {
            Some(header) => header.1 = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }

    pub(crate) fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(key, _)| !key.eq_ignore_ascii_case(name));
    }

    /// Replaces the body and updates Content-Length.
    pub(crate) fn set_body(&mut self, body: Vec<u8>) {
        self.set_header("Content-Length", body.len().to_string());
        self.body = body;
    }
}

/// Formats a time as an HTTP date (RFC 7231 IMF-fixdate), e.g.
/// `Fri, 04 Dec 2026 20:34:56 GMT`.
pub(crate) fn http_date(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} GMT",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Reason phrase for the status codes this server sends.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_date_matches_known_day() {
        let time = UNIX_EPOCH + Duration::from_secs(1_796_416_496);
        assert_eq!(http_date(time), "Fri, 04 Dec 2026 20:34:56 GMT");
    }

    #[test]
    fn root_end_found_after_declaration() {
        let xml = b"<?xml version=\"1.0\"?>\n<a:E x='1'><b>t</b></a:E >rest";
        assert_eq!(find_root_end(xml), Some(xml.len() - 4));
    }

    #[test]
    fn root_end_missing_in_truncated_xml() {
        assert_eq!(find_root_end(b"<a:E><b>t</b>"), None);
    }
}
