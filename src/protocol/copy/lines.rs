//! Which client line each line a worker was sent came from, kept compact (about two bytes a
//! row): a worker's error says "COPY t, line N" counting only the lines it got, and the client
//! must read its own line number there, as PostgreSQL alone would have said.

/// Rows sent to one node, in order: for each, the gap from the previous row's client line and
/// the lines it spans, as LEB128 varints.
#[derive(Debug, Default, Clone)]
pub struct LineLog {
    bytes: Vec<u8>,
    last_client: u64,
    node_lines: u64,
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn get(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

impl LineLog {
    /// Records a row the node is sent: its client line (PostgreSQL's count once it is read,
    /// its last physical line) and how many lines it spans.
    pub fn push(&mut self, client_line: u64, span: u64) {
        put(
            &mut self.bytes,
            client_line.saturating_sub(self.last_client),
        );
        put(&mut self.bytes, span);
        self.last_client = client_line;
        self.node_lines += span;
    }

    /// The client's line for the node's line `n`. Past the rows it was sent (an error while
    /// waiting for more, such as the client's CopyFail) the node's count runs on from the
    /// client's `client_lines`.
    pub fn client_line(&self, n: u64, client_lines: u64) -> u64 {
        if n > self.node_lines {
            return client_lines + (n - self.node_lines);
        }
        let (mut at, mut client, mut node) = (0, 0u64, 0u64);
        while let (Some(gap), Some(span)) = (get(&self.bytes, &mut at), get(&self.bytes, &mut at)) {
            client += gap;
            node += span;
            if n <= node {
                // A line inside a row spanning several: the same distance from its last line.
                return client.saturating_sub(node - n);
            }
        }
        n
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lines_map_to_client_lines() {
        let mut l = LineLog::default();
        // Header (client line 1), then client rows 3, 4 and a two-line row ending on 9.
        l.push(1, 1);
        l.push(3, 1);
        l.push(4, 1);
        l.push(9, 2);
        assert_eq!(l.client_line(1, 20), 1);
        assert_eq!(l.client_line(2, 20), 3);
        assert_eq!(l.client_line(3, 20), 4);
        assert_eq!(l.client_line(4, 20), 8);
        assert_eq!(l.client_line(5, 20), 9);
        assert_eq!(l.client_line(6, 20), 21);
        assert_eq!(l.client_line(0, 20), 0);
        let mut big = LineLog::default();
        for i in 0..1000 {
            big.push(1 + i * 3, 1);
        }
        assert_eq!(big.client_line(1000, 5000), 2998);
        assert!(big.bytes() <= 2000);
    }
}
