/*
 * The Java side of kafkalike's zk_client_cost bench (python -m kafkalike.bench.zk_client_cost):
 * ZooKeeper's own Java client (the one Kafka's KafkaZkClient uses) issuing the same requests as
 * the Python side, against the same server, so kazoo's per-request cost has a reference.
 *
 * Compiled at run time by the bench with javac against reference/lib (Kafka 3.9's
 * zookeeper-3.8.x jars). Written for kafkalike; not taken from Kafka or ZooKeeper.
 *
 * Usage: java ZkClientCost CONNECT ROOT ZNODES MODES MULTI_M SERVER_PID CLK_TCK PASSES
 *   MODES    comma-separated: "sync" (one blocking call at a time) or "async-K" (K requests in
 *            flight, callbacks releasing a semaphore: Kafka's ZooKeeperClient.handleRequests,
 *            whose zookeeper.max.in.flight.requests default is 10)
 *   PASSES   comma-separated pass names, e.g. "warmup,measured": every pass runs every mode
 *
 * For each (pass, mode, op) one JSON line on stdout: requests, ops (znodes), wall_s, cpu_s
 * (this JVM's CPU seconds, all threads: getProcessCpuTime) and server_cpu_s (the ZooKeeper
 * server's utime+stime from /proc/SERVER_PID/stat). Ops, each over ZNODES znodes
 * ROOT/brokers/topics/t/partitions/P/state: create, get, set (setData at version 0),
 * multi1 (per znode one multi: check ROOT/controller_epoch at version 0 + setData at version 1,
 * Kafka's updateLeaderAndIsr request), multiM (per MULTI_M znodes one multi: the check + their
 * setData at version 2), delete (at version 3). Any failed request ends the run (exit 1).
 */

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

public final class ZkClientCost {
    static final byte[] STATE =
        "{\"controller_epoch\":1,\"leader\":1,\"version\":1,\"leader_epoch\":0,\"isr\":[1,2,3]}"
            .getBytes(StandardCharsets.UTF_8);

    final ZooKeeper zk;
    final String root;
    final String guard;
    final String[] paths;
    final int multiM;
    final long serverPid;
    final double clkTck;

    ZkClientCost(ZooKeeper zk, String root, int znodes, int multiM, long serverPid, double clkTck) {
        this.zk = zk;
        this.root = root;
        this.guard = root + "/controller_epoch";
        this.paths = new String[znodes];
        for (int p = 0; p < znodes; p++) {
            paths[p] = root + "/brokers/topics/t/partitions/" + p + "/state";
        }
        this.multiM = multiM;
        this.serverPid = serverPid;
        this.clkTck = clkTck;
    }

    /** One outstanding request's completion: records the first error, frees its slot. */
    static final class Done {
        final Semaphore slots;
        final CountDownLatch latch;
        final AtomicReference<String> error;

        Done(Semaphore slots, CountDownLatch latch, AtomicReference<String> error) {
            this.slots = slots;
            this.latch = latch;
            this.error = error;
        }

        void finish(int rc, String what) {
            if (rc != KeeperException.Code.OK.intValue()) {
                error.compareAndSet(null, KeeperException.Code.get(rc) + " at " + what);
            }
            slots.release();
            latch.countDown();
        }
    }

    /** One kind of request, issued per index: blocking, or with a callback. */
    abstract static class Step {
        final String name;
        final int requests;

        Step(String name, int requests) {
            this.name = name;
            this.requests = requests;
        }

        abstract void sync(int i) throws Exception;

        abstract void async(int i, Done d);
    }

    List<Op> multiOps(int from, int to, int version) {
        List<Op> ops = new ArrayList<>(to - from + 1);
        ops.add(Op.check(guard, 0));
        for (int p = from; p < to; p++) {
            ops.add(Op.setData(paths[p], STATE, version));
        }
        return ops;
    }

    List<Step> steps() {
        final int n = paths.length;
        final int packs = (n + multiM - 1) / multiM;
        List<Step> steps = new ArrayList<>();
        steps.add(new Step("create", n) {
            void sync(int i) throws Exception {
                zk.create(paths[i], STATE, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            }

            void async(int i, Done d) {
                zk.create(paths[i], STATE, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                          (AsyncCallback.StringCallback) (rc, path, ctx, name) -> d.finish(rc, path), null);
            }
        });
        steps.add(new Step("get", n) {
            void sync(int i) throws Exception {
                zk.getData(paths[i], false, null);
            }

            void async(int i, Done d) {
                zk.getData(paths[i], false,
                           (AsyncCallback.DataCallback) (rc, path, ctx, data, stat) -> d.finish(rc, path), null);
            }
        });
        steps.add(new Step("set", n) {
            void sync(int i) throws Exception {
                zk.setData(paths[i], STATE, 0);
            }

            void async(int i, Done d) {
                zk.setData(paths[i], STATE, 0,
                           (AsyncCallback.StatCallback) (rc, path, ctx, stat) -> d.finish(rc, path), null);
            }
        });
        steps.add(new Step("multi1", n) {
            void sync(int i) throws Exception {
                zk.multi(multiOps(i, i + 1, 1));
            }

            void async(int i, Done d) {
                zk.multi(multiOps(i, i + 1, 1),
                         (AsyncCallback.MultiCallback) (rc, path, ctx, results) -> d.finish(rc, paths[i]), null);
            }
        });
        steps.add(new Step("multiM", packs) {
            void sync(int i) throws Exception {
                zk.multi(multiOps(i * multiM, Math.min(n, (i + 1) * multiM), 2));
            }

            void async(int i, Done d) {
                zk.multi(multiOps(i * multiM, Math.min(n, (i + 1) * multiM), 2),
                         (AsyncCallback.MultiCallback) (rc, path, ctx, results) -> d.finish(rc, paths[i * multiM]),
                         null);
            }
        });
        steps.add(new Step("delete", n) {
            void sync(int i) throws Exception {
                zk.delete(paths[i], 3);
            }

            void async(int i, Done d) {
                zk.delete(paths[i], 3, (AsyncCallback.VoidCallback) (rc, path, ctx) -> d.finish(rc, path), null);
            }
        });
        return steps;
    }

    /** Run every request of ``step``: one blocking call at a time (inFlight 0) or inFlight at once. */
    void run(Step step, int inFlight) throws Exception {
        if (inFlight <= 0) {
            for (int i = 0; i < step.requests; i++) {
                step.sync(i);
            }
            return;
        }
        Semaphore slots = new Semaphore(inFlight);
        CountDownLatch latch = new CountDownLatch(step.requests);
        AtomicReference<String> error = new AtomicReference<>();
        Done d = new Done(slots, latch, error);
        for (int i = 0; i < step.requests; i++) {
            slots.acquire();
            step.async(i, d);
        }
        if (!latch.await(600, TimeUnit.SECONDS)) {
            throw new IllegalStateException(step.name + ": no answer to every request within 600 s");
        }
        if (error.get() != null) {
            throw new IllegalStateException(step.name + ": " + error.get());
        }
    }

    static double processCpuSeconds() {
        com.sun.management.OperatingSystemMXBean os =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        return os.getProcessCpuTime() / 1e9;
    }

    double serverCpuSeconds() throws IOException {
        String stat = new String(Files.readAllBytes(Paths.get("/proc/" + serverPid + "/stat")),
                                 StandardCharsets.US_ASCII);
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split("\\s+");
        return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / clkTck;
    }

    /** Parents of every state znode and the guard, created once (not measured). */
    void createParents() throws Exception {
        List<String> chain = new ArrayList<>();
        for (String part : (root + "/brokers/topics/t/partitions").substring(1).split("/")) {
            chain.add((chain.isEmpty() ? "" : chain.get(chain.size() - 1)) + "/" + part);
        }
        for (String p : chain) {
            try {
                zk.create(p, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            } catch (KeeperException.NodeExistsException e) {
                // fine
            }
        }
        zk.create(guard, "1".getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        Step parents = new Step("parents", paths.length) {
            void sync(int i) {
                throw new UnsupportedOperationException();
            }

            void async(int i, Done d) {
                String p = paths[i].substring(0, paths[i].length() - "/state".length());
                zk.create(p, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                          (AsyncCallback.StringCallback) (rc, path, ctx, name) -> d.finish(rc, path), null);
            }
        };
        run(parents, 1000);
    }

    /** Remove what createParents made (not measured), deepest first. */
    void deleteParents() throws Exception {
        Step parents = new Step("parents", paths.length) {
            void sync(int i) {
                throw new UnsupportedOperationException();
            }

            void async(int i, Done d) {
                String p = paths[i].substring(0, paths[i].length() - "/state".length());
                zk.delete(p, -1, (AsyncCallback.VoidCallback) (rc, path, ctx) -> d.finish(rc, path), null);
            }
        };
        run(parents, 1000);
        zk.delete(guard, -1);
        String p = root + "/brokers/topics/t/partitions";
        while (p.length() > root.length()) {
            zk.delete(p, -1);
            p = p.substring(0, p.lastIndexOf('/'));
        }
        zk.delete(root, -1);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 8) {
            System.err.println("usage: ZkClientCost CONNECT ROOT ZNODES MODES MULTI_M SERVER_PID CLK_TCK PASSES");
            System.exit(2);
        }
        String connect = args[0];
        String root = args[1];
        int znodes = Integer.parseInt(args[2]);
        String[] modes = args[3].split(",");
        int multiM = Integer.parseInt(args[4]);
        long serverPid = Long.parseLong(args[5]);
        double clkTck = Double.parseDouble(args[6]);
        String[] passes = args[7].split(",");

        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connect, 30000, event -> {
            if (event.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        int status = 0;
        try {
            if (!connected.await(60, TimeUnit.SECONDS)) {
                throw new IllegalStateException("no ZooKeeper session within 60 s at " + connect);
            }
            ZkClientCost bench = new ZkClientCost(zk, root, znodes, multiM, serverPid, clkTck);
            bench.createParents();
            for (String pass : passes) {
                for (String mode : modes) {
                    int inFlight = mode.equals("sync") ? 0 : Integer.parseInt(mode.substring("async-".length()));
                    for (Step step : bench.steps()) {
                        double server0 = bench.serverCpuSeconds();
                        double cpu0 = processCpuSeconds();
                        long t0 = System.nanoTime();
                        bench.run(step, inFlight);
                        double wall = (System.nanoTime() - t0) / 1e9;
                        double cpu = processCpuSeconds() - cpu0;
                        double server = bench.serverCpuSeconds() - server0;
                        System.out.println(String.format(Locale.ROOT,
                            "{\"pass\": \"%s\", \"mode\": \"%s\", \"op\": \"%s\", \"requests\": %d, \"ops\": %d, "
                            + "\"wall_s\": %.6f, \"cpu_s\": %.6f, \"server_cpu_s\": %.6f}",
                            pass, mode, step.name, step.requests, znodes, wall, cpu, server));
                        System.out.flush();
                    }
                }
            }
            bench.deleteParents();
        } catch (Exception e) {
            System.err.println("ZkClientCost: " + e);
            status = 1;
        } finally {
            zk.close();
        }
        System.exit(status);
    }
}
