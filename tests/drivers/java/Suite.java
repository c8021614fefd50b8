// pgjdbc against one database (shardgate or the oracle): prints a transcript that must be the
// same for both. Usage: java -Dsetup=tests/drivers/setup.sql -cp postgresql.jar:DIR Suite
// HOST PORT USER PASSWORD DBNAME TABLE BIG
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.*;
import java.util.*;

public class Suite {
    static String table, big;
    static final String COLS = "k, v, n, f, b, d, ts, u, j, ba, arr";

    static void out(String label, Object v) {
        System.out.println(label + ": " + v);
    }

    static String show(Object o) throws SQLException {
        if (o instanceof byte[]) return "bytes:" + HexFormat.of().formatHex((byte[]) o);
        if (o instanceof Array) return Arrays.toString((Object[]) ((Array) o).getArray());
        return o == null ? "null" : o.getClass().getSimpleName() + ":" + o;
    }

    static List<String> rows(ResultSet rs) throws SQLException {
        List<String> all = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<String> r = new ArrayList<>();
            for (int i = 1; i <= n; i++) r.add(show(rs.getObject(i)));
            all.add(String.join("|", r));
        }
        rs.close();
        return all;
    }

    static Connection connect(String url, Properties p) throws SQLException {
        return DriverManager.getConnection(url, p);
    }

    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[4] + "?connectTimeout=10&sslmode=disable";
        Properties p = new Properties();
        p.setProperty("user", a[2]);
        if (!a[3].isEmpty()) p.setProperty("password", a[3]);
        p.setProperty("prepareThreshold", "1");
        table = a[5];
        big = a[6];
        try (Connection c = connect(url, p)) {
            setup(c);
            scenario(c, "threshold1", 10000);
            Properties bin = (Properties) p.clone();
            bin.setProperty("binaryTransfer", "true");
            bin.setProperty("prepareThreshold", "-1");
            try (Connection cb = connect(url, bin)) {
                scenario(cb, "binary", 20000);
            }
            batches(c);
            twoSessions(url, p);
            fetchSize(c);
        }
        System.out.println("done");
    }

    static void setup(Connection c) throws Exception {
        String text = Files.readString(Path.of(System.getProperty("setup")));
        text = text.replace("{t}", table);
        try (Statement s = c.createStatement()) {
            for (String stmt : text.split(";\n")) {
                StringBuilder b = new StringBuilder();
                for (String l : stmt.split("\n")) if (!l.startsWith("--")) b.append(l).append("\n");
                if (!b.toString().isBlank()) s.execute(b.toString());
            }
        }
    }

    static void scenario(Connection c, String mode, int base) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT " + COLS + " FROM " + table + " WHERE k = ?")) {
            for (int k = 1; k <= 12; k++) {
                ps.setLong(1, k);
                out(mode + " lookup " + k, rows(ps.executeQuery()));
            }
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT count(*), sum(n), min(d), max(ts), avg(f) FROM " + table + " WHERE k > ?")) {
            for (int i = 0; i < 3; i++) {
                ps.setInt(1, 100);
                out(mode + " scatter aggregate", rows(ps.executeQuery()));
            }
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT b, count(*), sum(k) FROM " + table + " WHERE k < ? GROUP BY b ORDER BY b")) {
            ps.setInt(1, 500);
            out(mode + " group by", rows(ps.executeQuery()));
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (k, v, n, d) VALUES (?, ?, ?, ?), (?, ?, ?, ?) RETURNING k, v, n, d")) {
            ps.setLong(1, base + 1); ps.setString(2, "a"); ps.setBigDecimal(3, new java.math.BigDecimal("1.5")); ps.setDate(4, java.sql.Date.valueOf("2025-01-02"));
            ps.setLong(5, base + 2); ps.setString(6, "b"); ps.setBigDecimal(7, new java.math.BigDecimal("2.5")); ps.setDate(8, java.sql.Date.valueOf("2025-01-03"));
            out(mode + " insert returning", rows(ps.executeQuery()));
        }
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (k, v) VALUES (?, ?)")) {
            for (int i = 3; i < 9; i++) { ps.setLong(1, base + i); ps.setString(2, "t" + i); ps.executeUpdate(); }
        }
        try (PreparedStatement ps = c.prepareStatement("UPDATE " + table + " SET v = v || '!' WHERE k IN (?, ?, ?)")) {
            ps.setLong(1, base + 3); ps.setLong(2, base + 4); ps.setLong(3, base + 5);
            out(mode + " update in txn", ps.executeUpdate());
        }
        c.commit();
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (k, v) VALUES (?, ?)")) {
            for (int i = 10; i < 16; i++) { ps.setLong(1, base + i); ps.setString(2, "r" + i); ps.executeUpdate(); }
        }
        try (PreparedStatement ps = c.prepareStatement("DELETE FROM " + table + " WHERE k IN (?, ?)")) {
            ps.setLong(1, base + 3); ps.setLong(2, base + 6);
            ps.executeUpdate();
        }
        c.rollback();
        c.setAutoCommit(true);
        try (PreparedStatement ps = c.prepareStatement("SELECT k, v FROM " + table + " WHERE k > ? ORDER BY k")) {
            ps.setLong(1, base);
            out(mode + " after commit and rollback", rows(ps.executeQuery()));
        }
        String[] bad = {
            "SELECT k / (k - k) FROM " + table + " WHERE k = ?",
            "SELECT k / (k - k) FROM " + table + " WHERE k > ?",
            "SELECT no_such_column FROM " + table + " WHERE k = ?",
        };
        for (String sql : bad) {
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setLong(1, sql.contains(">") ? 0 : 7);
                rows(ps.executeQuery());
                out(mode + " error", "no error");
            } catch (SQLException e) {
                out(mode + " error", e.getSQLState() + " " + e.getMessage().split("\n")[0]);
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT v FROM " + table + " WHERE k = ?")) {
                ps.setLong(1, 7);
                out(mode + " after error", rows(ps.executeQuery()));
            }
        }
    }

    static void batches(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (k, v, f) VALUES (?, ?, ?)")) {
            for (int i = 1; i <= 200; i++) {
                ps.setLong(1, 40000 + i); ps.setString(2, "batch" + i); ps.setDouble(3, i / 8.0);
                ps.addBatch();
            }
            out("batch counts", Arrays.stream(ps.executeBatch()).sum());
        }
        c.commit();
        try (PreparedStatement ps = c.prepareStatement("UPDATE " + table + " SET f = f * 2 WHERE k = ?")) {
            for (int i = 1; i <= 50; i++) { ps.setLong(1, 40000 + i); ps.addBatch(); }
            out("batch update counts", Arrays.stream(ps.executeBatch()).sum());
        }
        c.rollback();
        c.setAutoCommit(true);
        try (Statement s = c.createStatement()) {
            out("after batches", rows(s.executeQuery("SELECT count(*), sum(f) FROM " + table + " WHERE k > 40000 AND k < 50000")));
        }
    }

    static void twoSessions(String url, Properties p) throws SQLException {
        try (Connection a = connect(url, p); Connection b = connect(url, p);
             Statement sa = a.createStatement(); Statement sb = b.createStatement()) {
            sa.execute("CREATE TEMP TABLE drv_tt (x int)");
            sa.execute("INSERT INTO drv_tt VALUES (1), (2)");
            try {
                rows(sb.executeQuery("SELECT * FROM drv_tt"));
                out("temp in other session", "visible");
            } catch (SQLException e) {
                out("temp in other session", e.getSQLState());
            }
            for (int k = 1; k <= 3; k++) rows(sa.executeQuery("SELECT v FROM " + table + " WHERE k = " + k));
            out("temp in own session", rows(sa.executeQuery("SELECT sum(x) FROM drv_tt")));
            rows(sa.executeQuery("SELECT pg_advisory_lock(hashtext('" + table + "'))"));
            out("b tries", rows(sb.executeQuery("SELECT pg_try_advisory_lock(hashtext('" + table + "'))")));
            out("a unlocks", rows(sa.executeQuery("SELECT pg_advisory_unlock(hashtext('" + table + "'))")));
            out("b tries again", rows(sb.executeQuery("SELECT pg_try_advisory_lock(hashtext('" + table + "'))")));
            out("b unlocks", rows(sb.executeQuery("SELECT pg_advisory_unlock(hashtext('" + table + "'))")));
        }
    }

    static void fetchSize(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("SELECT k, v FROM " + big + " WHERE k > ? ORDER BY k")) {
            ps.setFetchSize(1000);
            ps.setLong(1, 0);
            long n = 0, s = 0;
            String first = null, last = null;
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    n++; s += rs.getLong(1);
                    last = rs.getLong(1) + "|" + rs.getString(2);
                    if (first == null) first = last;
                }
            }
            out("fetch size", n + " " + s + " " + first + " " + last);
        }
        c.commit();
        c.setAutoCommit(true);
    }
}
