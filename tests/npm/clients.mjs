// Runs one stock GraphQL WebSocket client against the gateway and prints what it receives as
// JSON lines, so the Rust integration tests can check them: `node clients.mjs graphql-ws URL
// QUERY VARIABLES COUNT` (graphql-ws's createClient, protocol graphql-transport-ws) or
// `node clients.mjs subscriptions-transport-ws URL QUERY VARIABLES COUNT` (the legacy client).
// It prints {"ready":true} once subscribed, then {"next": payload} per event, and exits after
// COUNT events, on completion ({"complete":true}) or on an error ({"error": ...}).
import WebSocket from "ws";
import { createClient } from "graphql-ws";
import subscriptions from "subscriptions-transport-ws";

const [kind, url, query, variablesText, countText] = process.argv.slice(2);
const variables = JSON.parse(variablesText || "{}");
const count = Number(countText || "1");
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");
let seen = 0;

function onNext(payload, stop) {
  print({ next: payload });
  seen += 1;
  if (seen >= count) {
    stop();
    setTimeout(() => process.exit(0), 50);
  }
}

if (kind === "graphql-ws") {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: "Bearer from-init" },
    retryAttempts: 0,
    on: { connected: () => print({ ready: true }) },
  });
  const stop = client.subscribe(
    { query, variables },
    {
      next: (payload) => onNext(payload, () => stop()),
      error: (error) => {
        print({ error: error instanceof Error ? error.message : error });
        process.exit(1);
      },
      complete: () => {
        print({ complete: true });
        process.exit(0);
      },
    },
  );
} else if (kind === "subscriptions-transport-ws") {
  const client = new subscriptions.SubscriptionClient(url, { reconnect: false }, WebSocket);
  client.onConnected(() => print({ ready: true }));
  const observable = client.request({ query, variables });
  const subscription = observable.subscribe({
    next: (payload) => onNext(payload, () => subscription.unsubscribe()),
    error: (error) => {
      print({ error: error.message ?? error });
      process.exit(1);
    },
    complete: () => {
      print({ complete: true });
      process.exit(0);
    },
  });
} else {
  print({ error: `unknown client ${kind}` });
  process.exit(2);
}
