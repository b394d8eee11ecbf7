"""The interactive review over gRPC against the real daemon (qlorad.v1.Reviews): two
reviewer tokens rate a blind sample item by item (resumable, field errors, submission
refused while items are unrated), submit, and get the summary with Cohen's kappa and the
adapter's win rate; blind labels appear only after the reviewer's own submission. A
reviewer token may not approve, promote, train or generate (PERMISSION_DENIED). A
deployer approves with evidence (evaluation ids + the review summary) and the audit
trail holds the submissions and the decision with its evidence, oldest first."""

import hashlib
import json
import os
import signal
import unittest

import grpc

import daemon_harness as h


class ConsoleReviewGrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = h.tempdir("qlorad-review-")
        cls.model = h.make_model(os.path.join(cls.work, "model"))
        cls.stubs = h.python_stubs(os.path.join(cls.work, "stubs"))
        data = h.write_sentiment(os.path.join(cls.work, "imdb.jsonl"), limit=240)
        cls.d = h.Daemon(cls.work, cls.model)
        cls.d.tokens["rita"] = "rita-secret"  # a second reviewer (the harness gives one per role)
        with open(cls.d.tokens_file, "a") as f:
            f.write("rita reviewer sha256:%s\n" % hashlib.sha256(b"rita-secret").hexdigest())
        cls.d.start()
        d = cls.d
        d.ctl("datasets", "upload", data, "--id", "imdb", "--format", "classification", "--allow-small", role="trainer")
        watch = d.ctl("jobs", "submit", "--name", "sentiment", "--epochs", "1", "--dataset", "imdb", "--batch-size", "8",
                      "--max-seq-len", "64", "--r", "4", "--watch", role="trainer")
        assert "sentiment@1" in watch.stderr, watch.stderr
        cls.evaluation = d.ctl_json("eval", "--dataset", "imdb", "--adapter", "sentiment@1", "--max-examples", "12",
                                    role="trainer")["evaluation_id"]
        os.makedirs(os.path.join(cls.work, "sample"))
        d.ctl("eval", "review-export", cls.evaluation, "--out", os.path.join(cls.work, "sample"), "--blind",
              role="trainer")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(signal.SIGTERM)

    def stub(self, service):
        channel = grpc.insecure_channel(self.d.address)
        self.addCleanup(channel.close)
        return getattr(self.stubs[service][1], service.capitalize() + "Stub")(channel)

    def call(self, service, method, request, role):
        return getattr(self.stub(service), method)(request, metadata=[("authorization", "Bearer " + self.d.tokens[role])],
                                                   timeout=60)

    def code_of(self, service, method, request, role):
        try:
            self.call(service, method, request, role)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code(), e.details()

    def rv(self):
        return self.stubs["reviews"][0]

    def rate(self, role, items, skip=()):
        """Rates every item but `skip`; the ratings depend on the item and the reviewer."""
        shift = 0 if role == "reviewer" else 1
        for i, item in enumerate(items):
            if item.item_id in skip:
                continue
            self.call("reviews", "SaveJudgement", self.rv().SaveJudgementRequest(
                evaluation_id=self.evaluation, item_id=item.item_id, rating_a=1 + (i + shift * (i % 3 == 0)) % 5,
                rating_b=1 + (i * 2) % 5, preference=["A", "B", "tie", "A"][i % 4], comment="item %d" % i), role)

    def test_review_flow_permissions_and_audit(self):
        rv = self.rv()
        queue = self.call("reviews", "ListReviewQueue", rv.ListReviewQueueRequest(), "reviewer").entries
        self.assertEqual([e.evaluation_id for e in queue], [self.evaluation])
        self.assertTrue(queue[0].blind)
        self.assertEqual(queue[0].adapter_id, "sentiment@1")
        self.assertEqual(queue[0].rated_by_reviewer, 0)
        n = queue[0].items
        self.assertEqual(n, 12)
        self.assertEqual(self.code_of("reviews", "ListReviewQueue", rv.ListReviewQueueRequest(), "viewer")[0],
                         grpc.StatusCode.PERMISSION_DENIED)

        session = self.call("reviews", "GetReviewSession", rv.GetReviewSessionRequest(evaluation_id=self.evaluation),
                            "reviewer")
        self.assertEqual(len(session.items), n)
        self.assertEqual(session.reviewer, "reviewer-user")  # the token's name, not a request field
        self.assertTrue(all(i.label_a == "" and i.output_a and i.output_b for i in session.items))
        last = session.items[-1].item_id
        self.rate("reviewer", session.items, skip={last})

        code, details = self.code_of("reviews", "SubmitReview", rv.SubmitReviewRequest(evaluation_id=self.evaluation),
                                     "reviewer")
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("1 of %d items are unrated" % n, details)
        bad = rv.SaveJudgementRequest(evaluation_id=self.evaluation, item_id=last, rating_a=9, rating_b=3, preference="A")
        code, details = self.code_of("reviews", "SaveJudgement", bad, "reviewer")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("rating_a", details)
        bad = rv.SaveJudgementRequest(evaluation_id=self.evaluation, item_id="nope", rating_a=3, rating_b=3, preference="A")
        self.assertEqual(self.code_of("reviews", "SaveJudgement", bad, "reviewer")[0], grpc.StatusCode.NOT_FOUND)

        # Resume: a fresh read has everything saved so far.
        again = self.call("reviews", "GetReviewSession", rv.GetReviewSessionRequest(evaluation_id=self.evaluation),
                          "reviewer")
        self.assertEqual(sum(1 for i in again.items if i.rating_a > 0), n - 1)
        self.assertEqual(again.items[0].comment, "item 0")
        self.rate("reviewer", session.items)
        first = json.loads(self.call("reviews", "SubmitReview", rv.SubmitReviewRequest(evaluation_id=self.evaluation),
                                     "reviewer").summary_json)
        self.assertEqual(first["reviewers"], ["reviewer-user"])
        self.assertIn("win_rate", first)
        shown = self.call("reviews", "GetReviewSession", rv.GetReviewSessionRequest(evaluation_id=self.evaluation),
                          "reviewer")
        self.assertTrue(shown.submitted)
        self.assertTrue(all({i.label_a, i.label_b} == {"baseline", "adapter"} for i in shown.items))
        hidden = self.call("reviews", "GetReviewSession", rv.GetReviewSessionRequest(evaluation_id=self.evaluation), "rita")
        self.assertTrue(all(i.label_a == "" for i in hidden.items), "rita has not submitted")
        self.assertEqual(self.code_of("reviews", "SaveJudgement", rv.SaveJudgementRequest(
            evaluation_id=self.evaluation, item_id=last, rating_a=3, rating_b=3, preference="A"), "reviewer")[0],
            grpc.StatusCode.FAILED_PRECONDITION)

        self.rate("rita", hidden.items)
        summary_json = self.call("reviews", "SubmitReview", rv.SubmitReviewRequest(evaluation_id=self.evaluation),
                                 "rita").summary_json
        summary = json.loads(summary_json)
        self.assertEqual(summary["reviewers"], ["reviewer-user", "rita"])
        self.assertIsNotNone(summary["rating_agreement"]["cohen_kappa"])
        w = summary["win_rate"]
        self.assertEqual(w["wins"] + w["losses"] + w["ties"], 2 * n)
        self.assertLessEqual(w["lower"], w["rate"])
        self.assertLessEqual(w["rate"], w["upper"])
        record = json.loads(self.d.ctl_json("eval", "get", self.evaluation, role="viewer")["record_json"])
        self.assertEqual(record["review"]["summary"]["win_rate"], w)

        # The reviewer role reviews and reads, nothing else.
        ad, inf, jobs = (self.stubs[n][0] for n in ("adapters", "inference", "jobs"))
        for service, method, request in (
                ("adapters", "ApproveAdapter", ad.DecisionRequest(adapter="sentiment@1", note="lgtm")),
                ("adapters", "PromoteAdapter", ad.PromoteAdapterRequest(adapter="sentiment@1", alias="sentiment:prod")),
                ("inference", "Generate", inf.GenerateRequest(prompt="hi", max_new_tokens=1)),
                ("jobs", "CreateJob", jobs.CreateJobRequest(dataset_id="imdb", adapter_name="x"))):
            self.assertEqual(self.code_of(service, method, request, "reviewer")[0], grpc.StatusCode.PERMISSION_DENIED,
                             method)
        self.assertEqual(self.d.ctl_json("adapters", "get", "sentiment@1", role="viewer")["state"], "evaluated")

        # A deployer decides with the evidence it saw; the audit trail keeps it.
        decision = ad.DecisionRequest(adapter="sentiment@1", note="review and metrics read", risk_class="limited",
                                      documentation_ref="https://example.org/model-card",
                                      evidence_evaluation_ids=[self.evaluation], evidence_review_summary_json="{not json")
        code, details = self.code_of("adapters", "ApproveAdapter", decision, "deployer")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("evidence_review_summary_json", details)
        decision.evidence_review_summary_json = summary_json
        self.assertEqual(self.call("adapters", "ApproveAdapter", decision, "deployer").state, "approved")
        trail = self.call("reviews", "AuditTrail", rv.AuditTrailRequest(subject="adapter:sentiment@1"), "reviewer").entries
        self.assertEqual([e.action for e in trail][0], "register")
        self.assertEqual(trail[-1].action, "approve")
        self.assertEqual(trail[-1].actor, "deployer-user")
        details = json.loads(trail[-1].details_json)
        self.assertEqual(details["risk_class"], "limited")
        self.assertEqual(details["evidence"]["evaluation_ids"], [self.evaluation])
        self.assertEqual(details["evidence"]["review_summary"]["win_rate"], w)
        self.assertEqual([e.seq for e in trail], sorted(e.seq for e in trail))
        ev_trail = self.call("reviews", "AuditTrail", rv.AuditTrailRequest(subject="evaluation:" + self.evaluation),
                             "viewer").entries
        submits = [(e.action, e.actor) for e in ev_trail if e.action == "review.submit"]
        self.assertEqual(submits, [("review.submit", "reviewer-user"), ("review.submit", "rita")])
        self.assertEqual(self.code_of("reviews", "AuditTrail", rv.AuditTrailRequest(subject="nonsense"), "viewer")[0],
                         grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    unittest.main()
