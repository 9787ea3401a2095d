// Validate the Prometheus Operator resources among the given YAML files against the operator's CRD schemas
// (compiled into @kubernetes-models/prometheus-operator). Other kinds are left to kubernetes-validate.
// usage: node validate-crs.mjs FILE...   exit 1 if a resource is invalid or a file has no resource at all
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let bad = 0;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  let seen = 0;
  for (const doc of docs) {
    if (doc.errors.length) { console.log(`FAIL ${file}: ${doc.errors[0].message}`); bad++; continue; }
    const obj = doc.toJS();
    if (!obj) continue;
    seen++;
    if (obj.apiVersion !== "monitoring.coreos.com/v1") continue;
    const Model = v1[obj.kind];
    if (!Model) { console.log(`FAIL ${file}: no schema for ${obj.apiVersion} ${obj.kind}`); bad++; continue; }
    try {
      new Model(obj).validate();
      console.log(`INFO ${file} passed for ${obj.kind.toLowerCase()}/${obj.metadata?.name} against the prometheus-operator CRD schema`);
    } catch (e) {
      console.log(`FAIL ${file}: ${obj.kind}/${obj.metadata?.name}: ${e.message}`);
      bad++;
    }
  }
  if (!seen) { console.log(`FAIL ${file}: no resource`); bad++; }
}
process.exit(bad ? 1 : 0);
