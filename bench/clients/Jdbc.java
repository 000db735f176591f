// pgjdbc (DriverManager): does a new connection read sslrootcert again?
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;

public class Jdbc {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/postgres?user=postgres"
                + "&sslmode=verify-full&sslrootcert=" + a[2];
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (int i = 0; i < 2; i++) {
            try (Connection c = DriverManager.getConnection(url)) {
                c.createStatement().execute("select 1");
                System.out.println("ok");
            } catch (Exception e) {
                System.out.println("fail " + e.getMessage().split("\n")[0]);
            }
            System.out.flush();
            in.readLine();
        }
    }
}
