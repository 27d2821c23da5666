// kadm-compat: franz-go's kadm admin calls of issue 17 against a cluster; one JSON line per
// call ({"call", "ok", "note"}). Built and run by tests/compat/compat_suite.py (run_kadm).
//
//	kadm-compat <bootstrap> <topic RF3 with idempotent records> <topic to move> <group with offsets> <log dir> <broker of that dir>
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func emit(call string, err error, note string) {
	line := map[string]any{"call": call, "ok": err == nil, "note": note}
	if err != nil {
		line["note"] = err.Error()
	}
	b, _ := json.Marshal(line)
	fmt.Println(string(b))
}

func main() {
	bootstrap, ops, move, group, dir := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	broker, _ := strconv.Atoi(os.Args[6])
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...))
	if err != nil {
		emit("connect", err, "")
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	n := 0
	if err == nil {
		dirs.Each(func(d kadm.DescribedLogDir) {
			if d.Err == nil {
				n++
			}
		})
		if n == 0 {
			err = fmt.Errorf("no log dir described")
		}
	}
	emit("DescribeAllLogDirs", err, fmt.Sprintf("%d log dirs", n))

	var req kadm.AlterReplicaLogDirsReq
	ts := make(kadm.TopicsSet)
	ts.Add(ops, 0)
	req.Add(dir, ts)
	moved, err := adm.AlterBrokerReplicaLogDirs(ctx, int32(broker), req)
	if err == nil {
		moved.Each(func(r kadm.AlterReplicaLogDirsResponse) {
			if r.Err != nil && err == nil {
				err = r.Err
			}
		})
	}
	emit("AlterReplicaLogDirs", err, fmt.Sprintf("%s-0 on broker %d to %s", ops, broker, dir))

	var pa kadm.AlterPartitionAssignmentsReq
	pa.Assign(move, 0, []int32{int32(broker)})
	ar, err := adm.AlterPartitionAssignments(ctx, pa)
	if err == nil {
		err = ar.Error()
	}
	emit("AlterPartitionAssignments", err, fmt.Sprintf("%s-0 to broker %d", move, broker))
	_, err = adm.ListPartitionReassignments(ctx, nil)
	emit("ListPartitionReassignments", err, "answered")

	es := make(kadm.TopicsSet)
	es.Add(ops, 0, 1, 2)
	er, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, es)
	note := ""
	if err == nil {
		for _, ps := range er {
			for p, r := range ps {
				note += fmt.Sprintf("%d:%v ", p, r.Err)
			}
		}
	}
	emit("ElectLeaders(preferred)", err, strings.TrimSpace(note))

	var offs kadm.Offsets
	offs.AddOffset(ops, 1, 5, -1)
	dr, err := adm.DeleteRecords(ctx, offs)
	if err == nil {
		err = dr.Error()
	}
	emit("DeleteRecords", err, fmt.Sprintf("%s-1 below 5", ops))

	ds := make(kadm.TopicsSet)
	ds.Add(ops, 0)
	do, err := adm.DeleteOffsets(ctx, group, ds)
	if err == nil {
		err = do.Error()
	}
	emit("DeleteOffsets", err, "group "+group)

	ps := make(kadm.TopicsSet)
	ps.Add(ops, 0)
	dp, err := adm.DescribeProducers(ctx, ps)
	count := 0
	if err == nil {
		dp.EachProducer(func(kadm.DescribedProducer) { count++ })
		if count == 0 {
			err = fmt.Errorf("no producer described")
		}
	}
	emit("DescribeProducers", err, fmt.Sprintf("%d producer(s)", count))

	v := "2"
	ac, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.cleaner.threads", Value: &v}}, int32(broker))
	if err == nil {
		for _, r := range ac {
			if r.Err != nil && err == nil {
				err = r.Err
			}
		}
	}
	if err == nil {
		_, _ = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "log.cleaner.threads"}}, int32(broker))
	}
	emit("AlterBrokerConfigs", err, fmt.Sprintf("log.cleaner.threads on broker %d, then deleted", broker))

	lo, err := adm.ListEndOffsets(ctx, ops)
	if err == nil {
		err = lo.Error()
	}
	emit("ListEndOffsets", err, "")
}
