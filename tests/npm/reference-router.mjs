// Apollo Gateway (the reference Federation router, from npm) serving a supergraph, for the
// conformance tests: the same queries go to it and to Switchyard, and the answers must agree.
// Usage: node reference-router.mjs SUPERGRAPH_FILE
// Prints the router's GraphQL URL on one line once it listens; ends when stdin closes.
import { readFileSync } from "node:fs";
import { ApolloGateway } from "@apollo/gateway";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";

const gateway = new ApolloGateway({ supergraphSdl: readFileSync(process.argv[2], "utf8") });
const server = new ApolloServer({ gateway, includeStacktraceInErrorResponses: false });
const { url } = await startStandaloneServer(server, { listen: { host: "127.0.0.1", port: 0 } });
process.stdout.write(url + "\n");
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
