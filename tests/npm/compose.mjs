// Composes Federation v2 subgraphs into a supergraph with The Guild's composition library, as
// a team's build would. Usage: node compose.mjs NAME=URL=SCHEMA_FILE ...
// Prints the supergraph SDL; on composition errors prints them to stderr and exits 1.
import { readFileSync } from "node:fs";
import { parse } from "graphql";
import { composeServices } from "@theguild/federation-composition";

const services = process.argv.slice(2).map((arg) => {
  const [name, url, file] = arg.split("=");
  return { name, url, typeDefs: parse(readFileSync(file, "utf8")) };
});
const result = composeServices(services);
if (result.errors && result.errors.length > 0) {
  for (const error of result.errors) console.error(error.message);
  process.exit(1);
}
process.stdout.write(result.supergraphSdl);
