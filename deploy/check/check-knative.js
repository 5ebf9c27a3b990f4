// Validates every Knative Service manifest against the Knative schema
// (@kubernetes-models/knative), offline. Exits non-zero on the first error.
const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");
const { Service } = require("@kubernetes-models/knative/serving.knative.dev/v1/Service");

const root = path.join(__dirname, "..", "knative");
let checked = 0;
for (const transfer of fs.readdirSync(root)) {
  for (const file of fs.readdirSync(path.join(root, transfer))) {
    const p = path.join(root, transfer, file);
    const doc = yaml.load(fs.readFileSync(p, "utf8"));
    try {
      new Service(doc).validate();
    } catch (e) {
      console.error(`${p}: ${e.message}`);
      process.exit(1);
    }
    checked++;
  }
}
if (checked === 0) {
  console.error("no manifests found");
  process.exit(1);
}
console.log(`${checked} passed, 0 failed: Knative Service schema`);
