import { RequestMethod, Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import type { Express, NextFunction, Request, Response } from 'express';

/** A controller route as Express will match it, with what its decorators can be read from. */
export interface ControllerRoute {
  method: RequestMethod;
  path: string;
  handler: (...args: never[]) => unknown;
  controller: Type;
}

/** Refuses a request by throwing or rejecting with the error to answer; may set headers. */
export type RequestCheck = (request: Request, response: Response) => void | Promise<void>;

/** The check a route's requests need, or null when they need none. */
export type RouteCheck = (route: ControllerRoute) => RequestCheck | null;

const asArray = (paths: string | string[] | undefined): string[] => (Array.isArray(paths) ? paths : [paths ?? '']);

const joinPath = (...parts: string[]): string =>
  `/${parts
    .map((part) => part.replace(/^\/+|\/+$/g, ''))
    .filter(Boolean)
    .join('/')}`;

/** Every controller route, in the order Nest registers them. */
function controllerRoutes(app: NestExpressApplication): ControllerRoute[] {
  const scanner = new MetadataScanner();
  const routes: ControllerRoute[] = [];
  for (const wrapper of app.get(DiscoveryService).getControllers()) {
    const controller = wrapper.metatype as Type | null;
    if (!controller) continue;
    const prototype = controller.prototype as Record<string, (...args: never[]) => unknown>;
    for (const name of scanner.getAllMethodNames(prototype)) {
      const handler = prototype[name];
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (method === undefined) continue;
      for (const base of asArray(Reflect.getMetadata(PATH_METADATA, controller))) {
        for (const path of asArray(Reflect.getMetadata(PATH_METADATA, handler))) {
          routes.push({ method, path: joinPath(base, path), handler, controller });
        }
      }
    }
  }
  return routes;
}

/**
 * Runs the checks on each request to a controller route before the body parsers (call it before
 * them): Nest's guards come after them, so a request the service would refuse (no API key, over
 * the rate limit) could otherwise make it read and parse a body of up to IMPORT_BODY_LIMIT. The
 * routes are matched by Express itself, with the paths Nest gives them, so the same route decides
 * as Nest's router will; the first route that matches decides. Requests no route matches (docs,
 * unknown paths) pass. Checks whose factory is null are off.
 */
export function checkBeforeBodyParsing(app: NestExpressApplication, routeChecks: (RouteCheck | null)[]): void {
  const active = routeChecks.filter((check): check is RouteCheck => check !== null);
  if (active.length === 0) return;
  const express = app.getHttpAdapter().getInstance() as Express;
  const decided = new WeakSet<Request>();
  for (const route of controllerRoutes(app)) {
    const checks = active.map((checkOf) => checkOf(route)).filter((check): check is RequestCheck => check !== null);
    const verb = RequestMethod[route.method].toLowerCase() as 'all';
    express[verb](route.path, (request: Request, response: Response, next: NextFunction) => {
      if (decided.has(request)) return next();
      decided.add(request);
      runChecks(checks, 0, request, response, next);
    });
  }
}

/** The checks from `first` on, in turn; a check that answers at once is not awaited. */
function runChecks(checks: RequestCheck[], first: number, request: Request, response: Response, next: NextFunction) {
  for (let at = first; at < checks.length; at++) {
    let result: void | Promise<void>;
    try {
      result = checks[at](request, response);
    } catch (error) {
      return next(error);
    }
    if (result instanceof Promise) {
      result.then(() => runChecks(checks, at + 1, request, response, next), next);
      return;
    }
  }
  next();
}
